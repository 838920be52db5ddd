/**
 * Argument checks for kernel operations. Everything that ends up on an `ip` command line is checked here
 * first, so a bad value fails with InvalidArgument naming the field instead of an opaque iproute2 message,
 * and no value can smuggle extra tokens into an `ip -batch` line.
 */
import { familyOf, formatMac, parseMac, readPrefix } from "@nsm-ts/base/netaddr";
import { Code, fail } from "@nsm-ts/base/status";

// IPv6 zones (fe80::1%eth0) pass, as Node's net.isIP lets them.

/** Checks a plain IPv4/IPv6 address and returns its family (4 or 6). */
export function ipFamily(addr: string, field: string): 4 | 6 {
  return familyOf(addr, { zone: true }) ?? fail(Code.InvalidArgument, `kernel: ${field} ${JSON.stringify(addr)} is not an IP address`);
}

/** Checks `addr/len` (len 0–32 or 0–128; host bits allowed, as in an interface address) and returns the family. */
export function cidrFamily(cidr: string, field: string): 4 | 6 {
  const p = readPrefix(cidr, { zone: true });
  if (p === "form") fail(Code.InvalidArgument, `kernel: ${field} ${JSON.stringify(cidr)} is not addr/len`);
  if (p === "address") fail(Code.InvalidArgument, `kernel: ${field} ${JSON.stringify(cidr)} is not an IP address`);
  if (p === "length") {
    const max = cidr.slice(0, cidr.indexOf("/")).includes(":") ? 128 : 32;
    fail(
      Code.InvalidArgument,
      `kernel: ${field} ${JSON.stringify(cidr)} has prefix length ${Number(cidr.slice(cidr.indexOf("/") + 1))} > ${max}`,
    );
  }
  return p.family;
}

/** Checks a MAC address `aa:bb:cc:dd:ee:ff` and returns it in lower case. */
export function validateMac(mac: string, field = "mac"): string {
  const v = parseMac(mac) ?? fail(Code.InvalidArgument, `kernel: ${field} ${JSON.stringify(mac)} is not a MAC address`);
  return formatMac(v);
}

/** Checks an MTU against the range the kernel accepts for ethernet-like links. */
export function validateMtu(mtu: number, field = "mtu"): number {
  if (!Number.isInteger(mtu) || mtu < 68 || mtu > 65535) fail(Code.InvalidArgument, `kernel: ${field} ${mtu} is outside 68..65535`);
  return mtu;
}

/** Checks an unsigned integer field against a range. */
export function validateUint(n: number, min: number, max: number, field: string): number {
  if (!Number.isInteger(n) || n < min || n > max) fail(Code.InvalidArgument, `kernel: ${field} ${n} is outside ${min}..${max}`);
  return n;
}

/** Bytes VXLAN adds to every packet over an IPv4 underlay (outer IPv4 20 + UDP 8 + VXLAN 8 + inner Ethernet 14). */
export const VXLAN_OVERHEAD_V4 = 50;
/** Bytes VXLAN adds over an IPv6 underlay (outer IPv6 40 + UDP 8 + VXLAN 8 + inner Ethernet 14). */
export const VXLAN_OVERHEAD_V6 = 70;

/** The largest MTU for a VXLAN device (and the links behind it) on an underlay with `underlayMtu`. */
export function vxlanMtu(underlayMtu: number, underlayFamily: 4 | 6): number {
  return validateMtu(underlayMtu - (underlayFamily === 4 ? VXLAN_OVERHEAD_V4 : VXLAN_OVERHEAD_V6), "vxlan mtu");
}
