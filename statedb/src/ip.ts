/**
 * IP prefixes as compact tree keys for longest-prefix-match indexes: family tag, length, then the network
 * part packed 16 bits per UTF-16 code unit. Keys of one family and length have one size, so LPM is one exact
 * lookup per prefix length present in the index (at most 33 or 129, usually a handful).
 */
import { Code, fail } from "@nsm-ts/base/status";

/** A parsed prefix: its family, its length in bits and the address as 16-bit words (2 or 8). */
export interface PrefixBits {
  /** 4 or 6. */
  readonly family: 4 | 6;
  /** Prefix length in bits. */
  readonly len: number;
  /** The address (host bits included) as 16-bit words. */
  readonly words: readonly number[];
}

const v4Part = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$/;
const hexGroup = /^[0-9a-fA-F]{1,4}$/;

function v4Words(s: string): number[] | undefined {
  const parts = s.split(".");
  if (parts.length !== 4) return undefined;
  for (const p of parts) if (!v4Part.test(p)) return undefined;
  const [a, b, c, d] = parts.map(Number) as [number, number, number, number];
  return [(a << 8) | b, (c << 8) | d];
}

/** Hex digit value of a char code, or -1. */
function hexDigit(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 97 && c <= 102) return c - 87;
  if (c >= 65 && c <= 70) return c - 55;
  return -1;
}

/**
 * The common case (hex groups, optional "::", no embedded IPv4) in one pass without allocating per group;
 * LPM lookups parse an address each, so this is on the hot path. Returns undefined to defer to `v6Words`.
 */
function v6WordsFast(s: string): number[] | undefined {
  const words: number[] = [];
  let gap = -1;
  let val = 0;
  let digits = 0;
  const n = s.length;
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i);
    if (c === 58) {
      if (i + 1 < n && s.charCodeAt(i + 1) === 58) {
        if (gap >= 0) return undefined;
        if (digits) words.push(val);
        else if (i !== 0) return undefined;
        gap = words.length;
        i++;
      } else {
        if (!digits) return undefined;
        words.push(val);
      }
      val = 0;
      digits = 0;
      continue;
    }
    const h = hexDigit(c);
    if (h < 0 || digits === 4) return undefined;
    val = (val << 4) | h;
    digits++;
  }
  if (digits) words.push(val);
  else if (gap !== words.length || n < 2) return undefined;
  if (gap < 0) return words.length === 8 ? words : undefined;
  if (words.length > 7) return undefined;
  const fill = new Array<number>(8 - words.length).fill(0);
  words.splice(gap, 0, ...fill);
  return words;
}

function v6Words(s: string): number[] | undefined {
  if (!s.includes(".")) return v6WordsFast(s);
  const groups = (x: string): number[] | undefined => {
    if (x === "") return [];
    const out: number[] = [];
    const parts = x.split(":");
    for (let i = 0; i < parts.length; i++) {
      const p = parts[i] as string;
      if (i === parts.length - 1 && p.includes(".")) {
        // An embedded IPv4 tail (::ffff:198.51.100.1) counts as two groups.
        const w = v4Words(p);
        if (!w) return undefined;
        out.push(...w);
      } else if (hexGroup.test(p)) {
        out.push(parseInt(p, 16));
      } else {
        return undefined;
      }
    }
    return out;
  };
  const dbl = s.indexOf("::");
  if (dbl >= 0 && s.indexOf("::", dbl + 1) >= 0) return undefined;
  const head = groups(dbl >= 0 ? s.slice(0, dbl) : s);
  const tail = dbl >= 0 ? groups(s.slice(dbl + 2)) : [];
  if (!head || !tail) return undefined;
  const missing = 8 - head.length - tail.length;
  if (dbl >= 0 ? missing < 1 : missing !== 0) return undefined;
  return [...head, ...new Array<number>(missing).fill(0), ...tail];
}

/**
 * Parses `addr` or `addr/len` (IPv4 or IPv6). A bare address is a full-length prefix. Throws
 * `InvalidArgument` naming `what` when the text is not a valid address or length.
 */
export function parsePrefix(text: string, what = "prefix"): PrefixBits {
  const slash = text.indexOf("/");
  const addr = slash >= 0 ? text.slice(0, slash) : text;
  const isV6 = addr.includes(":");
  const words = isV6 ? v6Words(addr) : v4Words(addr);
  if (!words) fail(Code.InvalidArgument, `statedb: ${what} "${text}" is not an IP address or prefix`);
  const max = isV6 ? 128 : 32;
  let len = max;
  if (slash >= 0) {
    const l = text.slice(slash + 1);
    if (!/^\d{1,3}$/.test(l) || Number(l) > max) fail(Code.InvalidArgument, `statedb: ${what} "${text}" has a bad length`);
    len = Number(l);
  }
  return { family: isV6 ? 6 : 4, len, words };
}

/** The tree key of the network part of `p` cut to `len` bits (default its own length). */
export function prefixKey(p: PrefixBits, len = p.len): string {
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
