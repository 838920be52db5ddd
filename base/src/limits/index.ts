/**
 * Limits on what a server accepts and stores, in one place: the caps the networkservice `validate` element and
 * the registry `validate` element enforce with `InvalidArgument` naming the field, the default gRPC receive size,
 * and the checks themselves (sizes, counts, label maps, `google.protobuf.Timestamp`). Each cap is far above what
 * a real connection or registration carries; it exists so one hostile call cannot make a server store megabytes.
 * The table and the reasons are in `docs/wire-compatibility.md#limits`.
 */

import { Code, fail } from "../status/index.js";

/** Largest gRPC message a server accepts unless configured otherwise (`NSM_MAX_RECV_MESSAGE_BYTES`): 4 MiB. */
export const DEFAULT_MAX_RECV_MESSAGE_BYTES = 4 * 1024 * 1024;
/**
 * How long a server waits for the request message of a unary or server-streaming call before it answers
 * `DeadlineExceeded` (`NSM_RECEIVE_TIMEOUT`): 30 s.
 */
export const DEFAULT_RECEIVE_TIMEOUT_MS = 30_000;
/** The deadline a server gives unary calls that carry none (`NSM_DEFAULT_CALL_DEADLINE`): 60 s. */
export const DEFAULT_CALL_DEADLINE_MS = 60_000;
/**
 * How long before a call's deadline a server answers it `DeadlineExceeded` (at most a tenth of the call's time), so
 * the caller need not reset the stream (`NSM_DEADLINE_MARGIN`): 500 ms.
 */
export const DEFAULT_DEADLINE_MARGIN_MS = 500;
/** Most path segments of a connection (a local connection has 4, a remote one 6). */
export const MAX_PATH_SEGMENTS = 64;
/** Most entries of one label map (connection labels, mechanism parameters, segment metrics, selectors, NSE labels). */
export const MAX_LABELS = 256;
/** Longest label key, in UTF-8 bytes. */
export const MAX_LABEL_KEY_BYTES = 1024;
/** Longest label value, in UTF-8 bytes. */
export const MAX_LABEL_VALUE_BYTES = 4096;
/** Longest id or name (connection id, segment id and name, network service and endpoint names, mechanism class/type). */
export const MAX_NAME_BYTES = 1024;
/** Longest URL (an endpoint's registered URL). */
export const MAX_URL_BYTES = 4096;
/** Longest payload string and longest path-segment token. */
export const MAX_PAYLOAD_BYTES = 16 * 1024;
/** Most items of one repeated field (mechanism preferences, network service names, matches, routes, path ids). */
export const MAX_LIST_ITEMS = 256;
/** Largest connection context (IP, DNS, ethernet and extra context together), encoded. */
export const MAX_CONNECTION_CONTEXT_BYTES = 64 * 1024;
/** Largest registry entry (a network service or an endpoint), encoded. */
export const MAX_REGISTRY_ENTRY_BYTES = 64 * 1024;
/** Seconds of 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z: the range `google.protobuf.Timestamp` allows (RFC 3339). */
export const TIMESTAMP_MIN_SECONDS = -62_135_596_800n;
/** See `TIMESTAMP_MIN_SECONDS`. */
export const TIMESTAMP_MAX_SECONDS = 253_402_300_799n;

function bad(where: string, field: string, why: string): never {
  return fail(Code.InvalidArgument, `${where}: ${field} ${why}`);
}

/** True when `s` is longer than `max` UTF-8 bytes; measures only strings that might be. */
function tooLong(s: string, max: number): boolean {
  if (s.length * 3 <= max) return false; // a UTF-16 unit is at most 3 UTF-8 bytes
  return s.length > max || Buffer.byteLength(s, "utf8") > max;
}

/** Refuses a string longer than `max` UTF-8 bytes: `InvalidArgument` "`where`: `field` is longer than `max` bytes". */
export function checkSize(where: string, field: string, s: string, max: number): void {
  if (tooLong(s, max)) bad(where, field, `is longer than ${max} bytes`);
}

/** Refuses a repeated field with more than `max` items. */
export function checkCount(where: string, field: string, n: number, max: number): void {
  if (n > max) bad(where, field, `has ${n} items, more than ${max}`);
}

/** Options of `checkLabels`. */
export interface CheckLabelsOptions {
  /** Refuse an empty key too; default false. */
  nonEmptyKeys?: boolean;
}

/** Refuses a label map with more than `MAX_LABELS` entries, or a key or value above its cap. */
export function checkLabels(where: string, field: string, labels: Record<string, string>, opts: CheckLabelsOptions = {}): void {
  let n = 0;
  for (const k in labels) {
    if (++n > MAX_LABELS) bad(where, field, `has more than ${MAX_LABELS} labels`);
    if (opts.nonEmptyKeys && k === "") bad(where, field, "has an empty key");
    const shownKey = k.length > 64 ? `${JSON.stringify(k.slice(0, 64))}…` : JSON.stringify(k);
    checkSize(where, `${field} key ${shownKey}`, k, MAX_LABEL_KEY_BYTES);
    checkSize(where, `${field}[${shownKey}]`, labels[k] ?? "", MAX_LABEL_VALUE_BYTES);
  }
}

/** The shape of a `google.protobuf.Timestamp`. */
export interface TimestampLike {
  seconds: bigint;
  nanos: number;
}

/**
 * A valid Timestamp as epoch milliseconds; `InvalidArgument` naming `field` when its seconds lie outside the
 * RFC 3339 range or its nanos outside [0, 1e9). Never NaN, never an exception other than that status.
 */
export function timestampMs(where: string, field: string, ts: TimestampLike): number {
  const { seconds, nanos } = ts;
  if (typeof seconds !== "bigint" || seconds < TIMESTAMP_MIN_SECONDS || seconds > TIMESTAMP_MAX_SECONDS) {
    bad(where, `${field}.seconds`, `${String(seconds)} is outside the range 0001-01-01T00:00:00Z to 9999-12-31T23:59:59Z`);
  }
  if (!Number.isInteger(nanos) || nanos < 0 || nanos >= 1_000_000_000) {
    bad(where, `${field}.nanos`, `${String(nanos)} must be an integer in [0, 999999999]`);
  }
  return Number(seconds) * 1000 + Math.floor(nanos / 1_000_000);
}
