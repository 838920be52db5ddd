/**
 * IP prefixes as compact tree keys for longest-prefix-match indexes: family tag, length, then the network
 * part packed 16 bits per UTF-16 code unit. Keys of one family and length have one size, so LPM is one exact
 * lookup per prefix length present in the index (at most 33 or 129, usually a handful).
 */
import { type PrefixWords, readPrefix } from "@nsm-ts/base/netaddr";
import { Code, fail } from "@nsm-ts/base/status";

const bare = { bare: true } as const;

/**
 * Parses `addr` or `addr/len` (IPv4 or IPv6). A bare address is a full-length prefix. Throws
 * `InvalidArgument` naming `what` when the text is not a valid address or length.
 */
export function parsePrefix(text: string, what: string): PrefixWords {
  const p = readPrefix(text, bare);
  if (p === "address") fail(Code.InvalidArgument, `statedb: ${what} "${text}" is not an IP address or prefix`);
  if (typeof p === "string") fail(Code.InvalidArgument, `statedb: ${what} "${text}" has a bad length`);
  return p;
}

/** The tree key of the network part of `p` cut to `len` bits (default its own length). */
export function prefixKey(p: PrefixWords, len = p.len): string {
  let key = (p.family === 6 ? "6" : "4") + String.fromCharCode(len);
  const full = len >>> 4;
  for (let i = 0; i < full; i++) key += String.fromCharCode(p.words[i] as number);
  const rest = len & 15;
  if (rest) key += String.fromCharCode((p.words[full] as number) & ((0xffff << (16 - rest)) & 0xffff));
  return key;
}

/** Family and length of a stored key, as the slot of the per-length counters (v4 at len, v6 at 33 + len). */
export function lengthSlot(key: string): number {
  return (key[0] === "6" ? 33 : 0) + key.charCodeAt(1);
}
