/**
 * IP prefixes as bit strings ("4:" or "6:" followed by the first `len` bits as '0'/'1'), the key form of
 * longest-prefix-match indexes: a prefix contains an address exactly when its key is a string prefix of
 * the address's key, so LPM becomes a handful of exact lookups in an ordered tree.
 */
import { Code, fail } from "../status/index.js";

/** A parsed prefix: its family, the length in bits and the bit-string key of its network part. */
export interface PrefixBits {
  /** 4 or 6. */
  readonly family: 4 | 6;
  /** Prefix length in bits. */
  readonly len: number;
  /** Family tag plus all address bits (32 or 128 of them); slice to `2 + len` for the network key. */
  readonly bits: string;
}

const v4Part = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$/;

function v4Bits(s: string): string | undefined {
  const parts = s.split(".");
  if (parts.length !== 4) return undefined;
  let out = "";
  for (const p of parts) {
    if (!v4Part.test(p)) return undefined;
    out += Number(p).toString(2).padStart(8, "0");
  }
  return out;
}

function v6Bits(s: string): string | undefined {
  let head = s;
  let tail = "";
  const dbl = s.indexOf("::");
  if (dbl >= 0) {
    if (s.indexOf("::", dbl + 1) >= 0) return undefined;
    head = s.slice(0, dbl);
    tail = s.slice(dbl + 2);
  }
  const groups = (x: string): string[] | undefined => {
    if (x === "") return [];
    const out: string[] = [];
    const parts = x.split(":");
    for (let i = 0; i < parts.length; i++) {
      const p = parts[i] as string;
      if (i === parts.length - 1 && p.includes(".")) {
        // An embedded IPv4 tail (::ffff:198.51.100.1) counts as two groups.
        const b = v4Bits(p);
        if (b === undefined) return undefined;
        out.push(b.slice(0, 16), b.slice(16));
        continue;
      }
      if (!/^[0-9a-fA-F]{1,4}$/.test(p)) return undefined;
      out.push(parseInt(p, 16).toString(2).padStart(16, "0"));
    }
    return out;
  };
  const h = groups(head);
  const t = groups(tail);
  if (!h || !t) return undefined;
  const missing = 8 - h.length - t.length;
  if (dbl >= 0 ? missing < 1 : missing !== 0) return undefined;
  return [...h, ...Array<string>(missing).fill("0".repeat(16)), ...t].join("");
}

/**
 * Parses `addr` or `addr/len` (IPv4 or IPv6). A bare address is a full-length prefix. Throws
 * `InvalidArgument` naming `what` when the text is not a valid address or length.
 */
export function parsePrefix(text: string, what = "prefix"): PrefixBits {
  const slash = text.indexOf("/");
  const addr = slash >= 0 ? text.slice(0, slash) : text;
  const isV6 = addr.includes(":");
  const raw = isV6 ? v6Bits(addr) : v4Bits(addr);
  if (raw === undefined) fail(Code.InvalidArgument, `statedb: ${what} "${text}" is not an IP address or prefix`);
  const max = isV6 ? 128 : 32;
  let len = max;
  if (slash >= 0) {
    const l = text.slice(slash + 1);
    if (!/^\d{1,3}$/.test(l) || Number(l) > max) fail(Code.InvalidArgument, `statedb: ${what} "${text}" has a bad length`);
    len = Number(l);
  }
  return { family: isV6 ? 6 : 4, len, bits: (isV6 ? "6:" : "4:") + raw };
}

/** The tree key of a prefix's network part (host bits dropped). */
export function prefixKey(p: PrefixBits): string {
  return p.bits.slice(0, 2 + p.len);
}
