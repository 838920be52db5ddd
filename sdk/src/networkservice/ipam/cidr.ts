/**
 * IPv4/IPv6 addresses and prefixes as bigints: parsing, canonical formatting and overlap tests, for the
 * address pools and for prefix checks (excluded prefixes). No dependency: Node's `net` only validates.
 */
import { isIPv4, isIPv6 } from "node:net";

/** An IP prefix: family, first and last address (inclusive) and prefix length. */
export interface Cidr {
  readonly family: 4 | 6;
  readonly first: bigint;
  readonly last: bigint;
  readonly bits: number;
}

/** Parses an address (`a.b.c.d`, `fd00::1`) to its family and value; throws on anything else. */
export function parseAddress(s: string): { family: 4 | 6; value: bigint } {
  if (isIPv4(s)) return { family: 4, value: v4(s) };
  if (isIPv6(s)) return { family: 6, value: v6(s.split("%")[0] as string) };
  throw new Error(`invalid IP address "${s}"`);
}

function v4(s: string): bigint {
  return s.split(".").reduce((acc, part) => (acc << 8n) | BigInt(Number(part)), 0n);
}

function v6(s: string): bigint {
  let text = s;
  // An embedded IPv4 tail (::ffff:1.2.3.4) becomes two hex groups.
  const lastColon = text.lastIndexOf(":");
  const tail = text.slice(lastColon + 1);
  if (tail.includes(".")) {
    const n = v4(tail);
    text = `${text.slice(0, lastColon + 1)}${(n >> 16n).toString(16)}:${(n & 0xffffn).toString(16)}`;
  }
  const [head, rest] = text.split("::") as [string, string | undefined];
  const h = head ? head.split(":") : [];
  const r = rest === undefined ? [] : rest ? rest.split(":") : [];
  const fill = rest === undefined ? 0 : 8 - h.length - r.length;
  const groups = [...h, ...Array<string>(fill).fill("0"), ...r];
  return groups.reduce((acc, g) => (acc << 16n) | BigInt(parseInt(g, 16)), 0n);
}

/** Formats an address value canonically (dotted quad; RFC 5952 for IPv6: lower case, longest zero run as `::`). */
export function formatAddress(family: 4 | 6, value: bigint): string {
  if (family === 4) return [24n, 16n, 8n, 0n].map((s) => ((value >> s) & 0xffn).toString()).join(".");
  const groups: number[] = [];
  for (let i = 7; i >= 0; i--) groups.push(Number((value >> BigInt(i * 16)) & 0xffffn));
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen && j - i >= 2) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart < 0) return hex.join(":");
  return `${hex.slice(0, bestStart).join(":")}::${hex.slice(bestStart + bestLen).join(":")}`;
}

/** Parses `addr/len` (a bare address is a host prefix, /32 or /128); host bits are ignored. Throws on bad input. */
export function parseCidr(s: string): Cidr {
  const slash = s.indexOf("/");
  const { family, value } = parseAddress(slash < 0 ? s : s.slice(0, slash));
  const width = family === 4 ? 32 : 128;
  const lenText = slash < 0 ? String(width) : s.slice(slash + 1);
  const bits = /^\d{1,3}$/.test(lenText) ? Number(lenText) : NaN;
  if (!(bits >= 0 && bits <= width)) throw new Error(`invalid prefix length in "${s}"`);
  const hostBits = BigInt(width - bits);
  const first = (value >> hostBits) << hostBits;
  const last = first | ((1n << hostBits) - 1n);
  return { family, first, last, bits };
}

/** The prefix as `addr/len` with the network address. */
export function formatCidr(c: Cidr): string {
  return `${formatAddress(c.family, c.first)}/${c.bits}`;
}

/** True when two prefixes share at least one address. */
export function overlaps(a: Cidr, b: Cidr): boolean {
  return a.family === b.family && a.first <= b.last && b.first <= a.last;
}

/** True when `inner` lies entirely inside `outer`. */
export function contains(outer: Cidr, inner: Cidr): boolean {
  return outer.family === inner.family && outer.first <= inner.first && inner.last <= outer.last;
}
