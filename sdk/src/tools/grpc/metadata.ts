/**
 * Conversions between grpc-js `Metadata` and the plain records our API exposes. Binary (`-bin`) values are
 * base64-encoded so every value stays a string.
 */
import * as grpc from "@grpc/grpc-js";

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
  for (const [k, v] of Object.entries(md.getMap())) out[k] = str(v);
  return out;
}

/** Every value per key, in arrival order. */
export function allValues(md: grpc.Metadata): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const k of Object.keys(md.getMap())) out[k] = md.get(k).map(str);
  return out;
}
