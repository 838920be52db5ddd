/**
 * The prefix client of a vL3 endpoint: holds one `ipam.IPAM/ManagePrefixes` stream to the prefix server and
 * asks it (ALLOCATE) for a prefix; the prefix is the endpoint's as long as the stream is open, and returns to the
 * pool when it ends (docs/wire-compatibility.md#vl3-ipam). When the stream breaks (a prefix-server restart) it
 * reconnects and asks for the same prefix again, as upstream's vL3 endpoint does; a server that hands out another
 * one (the old one is taken meanwhile) resets the IPAM, and the vL3 elements move their clients to the new prefix
 * on their next refresh. Given several prefix servers (replicas sharing one pool), it uses the first and fails over
 * in order: a stream that cannot be opened or breaks moves to the next server, which is asked for the same prefix; it
 * pauses `retryIntervalMs` only after every server failed in turn. Background work is bound to `signal` and to
 * `close()`.
 */
import { IPAM, type PrefixResponse, Type } from "@nsm-ts/api/ipam";
import { type Clock, realClock } from "@nsm-ts/base/clock";
import { type Channel, createClient } from "@nsm-ts/base/grpc";
import { type Logger, silentLogger } from "@nsm-ts/base/log";
import { Code, StatusError } from "@nsm-ts/base/status";
import type { Vl3Ipam } from "./ipam.js";

/** Options of `startPrefixClient`. */
export interface PrefixClientOptions {
  /** The prefix to ask for first (e.g. the one held before a restart); default any. */
  prefix?: string;
  /** Prefixes the server must not hand out to us (`exclude_prefixes`); default none. */
  excludePrefixes?: readonly string[];
  /** Pause before reconnecting after the stream broke or failed; default 1 000 ms. */
  retryIntervalMs?: number;
  /** Clock of the pauses; default the real clock. */
  clock?: Clock;
  /** Ends the stream (and gives the prefix back) when aborted. */
  signal?: AbortSignal;
  /** Logger; default silent. */
  log?: Logger;
  /**
   * What the prefix server is, for messages (e.g. "NSM_PREFIX_SERVER_URL=tcp://…"), or one text per server; default
   * "the prefix server" (numbered when there are several).
   */
  describe?: string | readonly string[];
}

/** A running prefix client. */
export interface PrefixClient {
  /**
   * Resolves with the first prefix; rejects when the client is closed before one came, or with the server's
   * ResourceExhausted (naming the pool) when the pool has no prefix left at start (at every server).
   */
  readonly ready: Promise<string>;
  /** The prefix held now (undefined before the first answer). */
  readonly prefix: string | undefined;
  /** Index of the prefix server in use (or tried last) in the list given to `startPrefixClient`. */
  readonly server: number;
  /** Ends the stream, which returns the prefix to the pool, and waits for the background loop to stop. */
  close(): Promise<void>;
}

/** Starts the prefix client on `servers` (one channel, or several to fail over between), resetting `ipam` with each new prefix. */
export function startPrefixClient(servers: Channel | readonly Channel[], ipam: Vl3Ipam, opts: PrefixClientOptions = {}): PrefixClient {
  const clock = opts.clock ?? realClock;
  const log = opts.log ?? silentLogger;
  const retryMs = opts.retryIntervalMs ?? 1000;
  const channels: readonly Channel[] = Array.isArray(servers) ? servers : [servers as Channel];
  if (channels.length === 0) throw new StatusError(Code.InvalidArgument, "vl3: startPrefixClient needs at least one prefix server");
  const described = (i: number): string => {
    const d = opts.describe;
    if (typeof d === "string") return channels.length > 1 ? `${d} (server ${i + 1} of ${channels.length})` : d;
    return d?.[i] ?? (channels.length > 1 ? `prefix server ${i + 1} of ${channels.length}` : "the prefix server");
  };
  const ac = new AbortController();
  const signal = opts.signal ? AbortSignal.any([opts.signal, ac.signal]) : ac.signal;
  const clients = channels.map((ch) => createClient(IPAM, ch));
  let current = 0;
  let wanted = opts.prefix ?? "";
  let held: string | undefined;
  let resolveReady: (p: string) => void = () => undefined;
  let rejectReady: (e: unknown) => void = () => undefined;
  const ready = new Promise<string>((resolve, reject) => {
    resolveReady = resolve;
    rejectReady = reject;
  });
  // Nobody may be waiting on `ready` when the client is closed early.
  ready.catch(() => undefined);

  const apply = (resp: PrefixResponse): void => {
    if (resp.prefix === held) return;
    const old = held;
    ipam.reset(resp.prefix, resp.excludePrefixes);
    held = resp.prefix;
    wanted = resp.prefix;
    log.info({ prefix: resp.prefix, previous: old, excludePrefixes: resp.excludePrefixes }, "vl3: prefix taken");
    resolveReady(resp.prefix);
  };

  const loop = async (): Promise<void> => {
    // Failures since a stream last answered, and how many of them were an exhausted pool: a whole round of
    // failures pauses, a whole round of exhausted pools at start gives up.
    let failures = 0;
    let exhausted = 0;
    let exhaustedErr: unknown;
    while (!signal.aborted) {
      const what = described(current);
      let why = "stream ended";
      let answered = false;
      try {
        // The request side stays open for the life of the stream: closing it would end the server's loop.
        const requests = (async function* () {
          yield { type: Type.ALLOCATE, prefix: wanted, excludePrefixes: [...(opts.excludePrefixes ?? [])] };
          await new Promise<void>((resolve) => {
            if (signal.aborted) resolve();
            else signal.addEventListener("abort", () => resolve(), { once: true });
          });
        })();
        for await (const resp of (clients[current] as (typeof clients)[number]).managePrefixes(requests, { signal })) {
          if (!answered) {
            answered = true;
            failures = 0;
            exhausted = 0;
          }
          apply(resp);
        }
      } catch (err) {
        if (signal.aborted) break;
        why = err instanceof Error ? err.message : String(err);
        if (err instanceof StatusError && err.code === Code.ResourceExhausted) {
          log.error({ err, prefixServer: what }, "vl3: the prefix pool is exhausted");
          exhausted++;
          exhaustedErr = err;
        }
      }
      if (signal.aborted) break;
      failures++;
      // At start there is nothing to wait for when every server's pool is exhausted: the owner hears it through
      // `ready` and decides.
      if (held === undefined && exhausted >= channels.length) {
        rejectReady(exhaustedErr);
        return;
      }
      const next = (current + 1) % channels.length;
      log.warn(
        { prefixServer: what, why, prefix: held, ...(channels.length > 1 ? { next: described(next) } : {}) },
        "vl3: prefix stream broke; asking for the same prefix again",
      );
      current = next;
      if (failures < channels.length) continue;
      failures = 0;
      exhausted = 0;
      try {
        await clock.sleep(retryMs, signal);
      } catch {
        break;
      }
    }
    rejectReady(new StatusError(Code.Canceled, `vl3: prefix client for ${described(current)} closed before a prefix came`));
  };
  const done = loop();

  return {
    ready,
    get prefix() {
      return held;
    },
    get server() {
      return current;
    },
    async close() {
      ac.abort();
      await done;
    },
  };
}
