/**
 * Conversions between grpc-js `Metadata` and the plain records our API exposes. Binary (`-bin`) values are
 * base64-encoded so every value stays a string.
 *
 * Node's HTTP/2 layer joins repeated header fields into one string separated by ", " before grpc-js sees
 * them, so we split on ", " to recover the individual values (token rules need "exactly one value"). NSM
 * values never contain ", " (JWTs, RFC 3339 times, Go's compact JSON); a value that did would be split too.
 */
import * as grpc from "@grpc/grpc-js";

/**
 * The caller's deadline in epoch milliseconds, sent beside `grpc-timeout` by our clients; a server takes the earlier
 * of the two (within `DEADLINE_HEADER_MAX_SKEW_MS`) as the call's deadline.
 */
export const DEADLINE_HEADER = "nsm-deadline-ms";
/**
 * How much earlier than `grpc-timeout` says the `DEADLINE_HEADER` deadline may be and still be believed: a transit
 * slower than this, or a client clock further behind, falls back to `grpc-timeout`.
 */
export const DEADLINE_HEADER_MAX_SKEW_MS = 5_000;

function str(v: grpc.MetadataValue): string {
  return typeof v === "string" ? v : v.toString("base64");
}

/** Builds grpc-js metadata from a record (keys lower-cased, as HTTP/2 requires). */
export function toGrpcMetadata(record: Readonly<Record<string, string>> | undefined): grpc.Metadata {
  const md = new grpc.Metadata();
  if (record) {
    for (const [k, v] of Object.entries(record)) {
      const key = k.toLowerCase();
      if (key.endsWith("-bin")) md.set(key, Buffer.from(v, "base64"));
      else md.set(key, v);
    }
  }
  return md;
}

/** First value per key. */
export function firstValues(md: grpc.Metadata | null | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  if (!md) return out;
  for (const [k, v] of Object.entries(md.getMap())) {
    const s = str(v);
    const i = typeof v === "string" ? s.indexOf(", ") : -1;
    out[k] = i < 0 ? s : s.slice(0, i);
  }
  return out;
}

/** Every value per key, in arrival order. */
export function allValues(md: grpc.Metadata): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const k of Object.keys(md.getMap())) {
    out[k] = md.get(k).flatMap((v) => (typeof v === "string" ? v.split(", ") : [str(v)]));
  }
  return out;
}
