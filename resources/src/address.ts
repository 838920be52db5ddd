/**
 * IP and MAC addresses as bigints: parsing with errors that name the request field, canonical formatting
 * (RFC 5952 for IPv6, lower-case colon form for MACs) and CIDR arithmetic for the allocators.
 */
import { isIPv4, isIPv6 } from "node:net";
import { Code, fail } from "@nsm-ts/base/status";

/** An IP address: its family and its value as an unsigned integer. */
export interface Ip {
  readonly family: 4 | 6;
  readonly value: bigint;
}

/** A parsed CIDR: the network address (host bits zero), the prefix length and the number of addresses. */
export interface Cidr {
  readonly family: 4 | 6;
  readonly base: bigint;
  readonly len: number;
  readonly size: bigint;
}

const bitsOf = (family: 4 | 6): number => (family === 4 ? 32 : 128);

/** Parses an IPv4 or IPv6 address; undefined when it is neither. */
export function parseIp(s: string): Ip | undefined {
  if (isIPv4(s)) {
    let v = 0n;
    for (const p of s.split(".")) v = (v << 8n) | BigInt(Number(p));
    return { family: 4, value: v };
  }
  if (!isIPv6(s) || s.includes("%")) return undefined;
  let text = s;
  const lastColon = text.lastIndexOf(":");
  const last = text.slice(lastColon + 1);
  if (last.includes(".")) {
    // An embedded IPv4 address stands for the last two groups.
    const v4 = parseIp(last);
    if (v4 === undefined) return undefined;
    text = `${text.slice(0, lastColon + 1)}${(v4.value >> 16n).toString(16)}:${(v4.value & 0xffffn).toString(16)}`;
  }
  const [head, rest] = text.split("::") as [string, string | undefined];
  const groups = (h: string): bigint[] => (h === "" ? [] : h.split(":").map((g) => BigInt(parseInt(g, 16))));
  const a = groups(head);
  const b = rest === undefined ? [] : groups(rest);
  const all = rest === undefined ? a : [...a, ...Array<bigint>(Math.max(0, 8 - a.length - b.length)).fill(0n), ...b];
  if (all.length !== 8) return undefined;
  let v = 0n;
  for (const g of all) v = (v << 16n) | g;
  return { family: 6, value: v };
}

/** Formats an address canonically (dotted quad; RFC 5952 lower-case with the longest zero run compressed). */
export function formatIp(ip: Ip): string {
  if (ip.family === 4) {
    const v = Number(ip.value);
    return `${(v >>> 24) & 255}.${(v >>> 16) & 255}.${(v >>> 8) & 255}.${v & 255}`;
  }
  const g: number[] = [];
  for (let i = 7; i >= 0; i--) g.push(Number((ip.value >> BigInt(i * 16)) & 0xffffn));
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

/** Parses an address or fails with InvalidArgument naming `field`. */
export function requireIp(s: string, field: string): Ip {
  return parseIp(s) ?? fail(Code.InvalidArgument, `resources: ${field}: "${s}" is not an IP address`);
}

/** Parses a CIDR (`addr/len`, host bits zero) or fails with InvalidArgument naming `field`. */
export function requireCidr(s: string, field: string): Cidr {
  const slash = s.indexOf("/");
  const ip = slash < 0 ? undefined : parseIp(s.slice(0, slash));
  const lenText = slash < 0 ? "" : s.slice(slash + 1);
  if (ip === undefined || !/^\d{1,3}$/.test(lenText))
    fail(Code.InvalidArgument, `resources: ${field}: "${s}" is not a CIDR (address/length)`);
  const len = Number(lenText);
  const bits = bitsOf(ip.family);
  if (len > bits) fail(Code.InvalidArgument, `resources: ${field}: "${s}" has a prefix length above ${bits}`);
  const size = 1n << BigInt(bits - len);
  if ((ip.value & (size - 1n)) !== 0n) {
    fail(
      Code.InvalidArgument,
      `resources: ${field}: "${s}" has host bits set (the network is ${formatIp({ family: ip.family, value: ip.value & ~(size - 1n) })}/${len})`,
    );
  }
  return { family: ip.family, base: ip.value, len, size };
}

/** Formats a CIDR as `addr/len`. */
export function formatCidr(c: Cidr): string {
  return `${formatIp({ family: c.family, value: c.base })}/${c.len}`;
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

const macRe = /^[0-9a-f]{2}([:-][0-9a-f]{2}){5}$/i;
const ouiRe = /^[0-9a-f]{2}([:-][0-9a-f]{2}){2}$/i;

/** Parses a MAC (`aa:bb:cc:dd:ee:ff` or with dashes) to a 48-bit integer, or fails naming `field`. */
export function requireMac(s: string, field: string): bigint {
  if (!macRe.test(s)) fail(Code.InvalidArgument, `resources: ${field}: "${s}" is not a MAC address`);
  return BigInt(`0x${s.replace(/[:-]/g, "")}`);
}

/** Parses a three-octet OUI to its 24-bit value, or fails naming `field`. */
export function requireOui(s: string, field: string): bigint {
  if (!ouiRe.test(s)) fail(Code.InvalidArgument, `resources: ${field}: "${s}" is not an OUI (three octets, e.g. fa:16:3e)`);
  const v = BigInt(`0x${s.replace(/[:-]/g, "")}`);
  // A multicast OUI would make every MAC under it a group address, which no port may carry.
  if ((v >> 16n) & 1n) fail(Code.InvalidArgument, `resources: ${field}: "${s}" is a multicast OUI`);
  return v;
}

/** Formats a 48-bit MAC in lower-case colon form. */
export function formatMac(v: bigint): string {
  return v
    .toString(16)
    .padStart(12, "0")
    .replace(/(..)(?!$)/g, "$1:");
}
