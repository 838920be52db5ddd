/**
 * IP and MAC addresses for the resource managers: `@nsm-ts/base/netaddr` with errors that name the request
 * field (`resources: <field>: …`), CIDRs that must have no host bits, and OUIs that must not be multicast.
 */
import * as netaddr from "@nsm-ts/base/netaddr";
import { Code, fail } from "@nsm-ts/base/status";

export type { Cidr, Ip } from "@nsm-ts/base/netaddr";
export { cidrContains, cidrCovers, cidrOverlaps, formatCidr, formatIp, formatMac } from "@nsm-ts/base/netaddr";

/** Parses an IPv4 or IPv6 address (no zone); undefined when it is neither. */
export function parseIp(s: string): netaddr.Ip | undefined {
  return netaddr.parseIp(s);
}

/** Parses an address or fails with InvalidArgument naming `field`. */
export function requireIp(s: string, field: string): netaddr.Ip {
  return netaddr.requireIp(s, `resources: ${field}`);
}

/** Parses a CIDR (`addr/len`, host bits zero) or fails with InvalidArgument naming `field`. */
export function requireCidr(s: string, field: string): netaddr.Cidr {
  return netaddr.requireCidr(s, `resources: ${field}`, { strict: true });
}

/** Parses a MAC (`aa:bb:cc:dd:ee:ff` or with dashes) to a 48-bit integer, or fails naming `field`. */
export function requireMac(s: string, field: string): bigint {
  return netaddr.requireMac(s, `resources: ${field}`, { dashes: true });
}

/** Parses a three-octet OUI to its 24-bit value, or fails naming `field`. */
export function requireOui(s: string, field: string): bigint {
  const v =
    netaddr.parseOui(s, { dashes: true }) ??
    fail(Code.InvalidArgument, `resources: ${field}: "${s}" is not an OUI (three octets, e.g. fa:16:3e)`);
  // A multicast OUI would make every MAC under it a group address, which no port may carry.
  if ((v >> 16n) & 1n) fail(Code.InvalidArgument, `resources: ${field}: "${s}" is a multicast OUI`);
  return v;
}
