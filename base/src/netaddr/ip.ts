/**
 * IP addresses and CIDRs as bigints: parsing (errors name the input), canonical formatting (RFC 5952 for
 * IPv6) and the arithmetic allocators and overlap checks need.
 */
import { Code, fail } from "../status/index.js";
import { type IpFamily, type IpOptions, ipWords, type PrefixFault, type PrefixOptions, readPrefix } from "./words.js";

/** An IP address: its family and its value as an unsigned integer. */
export interface Ip {
  readonly family: IpFamily;
  readonly value: bigint;
}

/** A CIDR: the network address (host bits zero), the prefix length and the number of addresses. */
export interface Cidr {
  readonly family: IpFamily;
  readonly base: bigint;
  readonly len: number;
  readonly size: bigint;
}

/** Options of the CIDR parsers. */
export interface CidrOptions extends PrefixOptions {
  /** Reject host bits (`198.51.100.7/24`) instead of clearing them; default false. */
  readonly strict?: boolean;
}

/** Why a text is not a CIDR: a `PrefixFault`, or `hostBits` when `strict` and host bits are set. */
export type CidrFault = PrefixFault | "hostBits";

/** Address width of a family in bits. */
export function ipBits(family: IpFamily): 32 | 128 {
  return family === 4 ? 32 : 128;
}

function wordsValue(words: readonly number[]): bigint {
  const w = words as number[];
  if (w.length === 2) return BigInt((((w[0] as number) << 16) | (w[1] as number)) >>> 0);
  let v = 0n;
  for (let i = 0; i < 8; i += 2) v = (v << 32n) | BigInt((((w[i] as number) << 16) | (w[i + 1] as number)) >>> 0);
  return v;
}

/** Parses an IPv4 or IPv6 address; undefined when it is neither. */
export function parseIp(text: string, opts?: IpOptions): Ip | undefined {
  const w = ipWords(text, opts);
  return w === undefined ? undefined : { family: w.length === 2 ? 4 : 6, value: wordsValue(w) };
}

const named = (what: string | undefined, text: string): string => `${what ? `${what}: ` : ""}"${text}"`;

/** Parses an address or throws InvalidArgument naming `what` and the text. */
export function requireIp(text: string, what?: string, opts?: IpOptions): Ip {
  return parseIp(text, opts) ?? fail(Code.InvalidArgument, `${named(what, text)} is not an IP address`);
}

/** The CIDR of `len` bits containing `ip` (host bits cleared). Throws InvalidArgument for a bad length. */
export function cidrOf(ip: Ip, len: number): Cidr {
  const bits = ipBits(ip.family);
  if (!Number.isInteger(len) || len < 0 || len > bits) fail(Code.InvalidArgument, `prefix length ${len} is not within 0..${bits}`);
  const size = 1n << BigInt(bits - len);
  return { family: ip.family, base: ip.value & ~(size - 1n), len, size };
}

/** Reads a CIDR (see `CidrOptions`); returns why when the text is not one, for callers that word their own errors. */
export function readCidr(text: string, opts?: CidrOptions): Cidr | CidrFault {
  const p = readPrefix(text, opts);
  if (typeof p === "string") return p;
  const value = wordsValue(p.words);
  const c = cidrOf({ family: p.family, value }, p.len);
  return opts?.strict && c.base !== value ? "hostBits" : c;
}

/** Parses a CIDR (see `CidrOptions`); undefined when the text is not one. */
export function parseCidr(text: string, opts?: CidrOptions): Cidr | undefined {
  const c = readCidr(text, opts);
  return typeof c === "string" ? undefined : c;
}

/** Parses a CIDR or throws InvalidArgument naming `what`, the text and what is wrong with it. */
export function requireCidr(text: string, what?: string, opts?: CidrOptions): Cidr {
  const c = readCidr(text, opts);
  if (typeof c !== "string") return c;
  const at = named(what, text);
  if (c === "length")
    fail(Code.InvalidArgument, `${at} has a prefix length above ${text.slice(0, text.indexOf("/")).includes(":") ? 128 : 32}`);
  if (c === "hostBits") {
    fail(
      Code.InvalidArgument,
      `${at} has host bits set (the network is ${formatCidr(readCidr(text, { ...opts, strict: false }) as Cidr)})`,
    );
  }
  return fail(Code.InvalidArgument, `${at} is not ${opts?.bare ? "an IP address or a CIDR" : "a CIDR (address/length)"}`);
}

/** Formats an address canonically: dotted quad; RFC 5952 for IPv6 (lower case, the longest run of two or more zero words as `::`). */
export function formatIp(ip: Ip): string {
  if (ip.family === 4) {
    const v = Number(ip.value);
    return `${(v >>> 24) & 255}.${(v >>> 16) & 255}.${(v >>> 8) & 255}.${v & 255}`;
  }
  const g: number[] = [];
  for (let i = 3; i >= 0; i--) {
    const x = Number((ip.value >> BigInt(i * 32)) & 0xffffffffn);
    g.push(x >>> 16, x & 0xffff);
  }
  let bestAt = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) {
      bestAt = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (xs: number[]): string => xs.map((x) => x.toString(16)).join(":");
  if (bestAt < 0) return hex(g);
  return `${hex(g.slice(0, bestAt))}::${hex(g.slice(bestAt + bestLen))}`;
}

/** Formats a CIDR as `addr/len`. */
export function formatCidr(c: Cidr): string {
  return `${formatIp({ family: c.family, value: c.base })}/${c.len}`;
}

/** The last address of a CIDR (the IPv4 broadcast address). */
export function cidrLast(c: Cidr): bigint {
  return c.base + c.size - 1n;
}

/** Whether `ip` lies inside `cidr`. */
export function cidrContains(cidr: Cidr, ip: Ip): boolean {
  return ip.family === cidr.family && ip.value >= cidr.base && ip.value < cidr.base + cidr.size;
}

/** Whether `inner` lies entirely inside `outer`. */
export function cidrCovers(outer: Cidr, inner: Cidr): boolean {
  return inner.family === outer.family && inner.len >= outer.len && inner.base >= outer.base && inner.base < outer.base + outer.size;
}

/** Whether two CIDRs share an address. */
export function cidrOverlaps(a: Cidr, b: Cidr): boolean {
  return a.family === b.family && a.base < b.base + b.size && b.base < a.base + a.size;
}

/** The address `n` (negative: before) after `ip`; undefined when that leaves the family's range. */
export function offsetIp(ip: Ip, n: bigint): Ip | undefined {
  const value = ip.value + n;
  return value < 0n || value >> BigInt(ipBits(ip.family)) !== 0n ? undefined : { family: ip.family, value };
}

/** The address after `ip`; undefined after the last one of its family. */
export function nextIp(ip: Ip): Ip | undefined {
  return offsetIp(ip, 1n);
}
