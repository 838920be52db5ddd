/** Request-field helpers shared by the managers: required fields, canonical addresses, record ids. */
import { Code, fail } from "@nsm-ts/base/status";
import { formatCidr, formatIp, requireCidr, requireIp } from "../address.js";

/** Most addresses one bulk allocation may ask for. */
export const MAX_BULK = 10_000;

/** The value of a required field; InvalidArgument naming `field` when it is empty. */
export const need = (value: string, field: string): string => value || fail(Code.InvalidArgument, `resources: ${field}: required`);

/** The record id of an IP address: its subnet, then the canonical address. */
export const ipId = (subnetId: string, address: string): string => `${subnetId}/${address}`;

/** The subnet and address of an IP record id (the address never contains a slash). */
export function ipIdParts(id: string): { subnetId: string; address: string } {
  const at = id.lastIndexOf("/");
  return { subnetId: id.slice(0, at), address: id.slice(at + 1) };
}

/** InvalidArgument unless a bulk allocation's `count` is 1..MAX_BULK. */
export function requireCount(count: number): void {
  if (count < 1 || count > MAX_BULK) fail(Code.InvalidArgument, `resources: count: must be 1..${MAX_BULK}, got ${count}`);
}

/** A CIDR field in canonical form. */
export function formatCidrOf(s: string, field: string): string {
  return formatCidr(requireCidr(s, field));
}

/** A required IP address field in canonical form. */
export function canonicalIp(s: string, field: string): string {
  return formatIp(requireIp(need(s, field), field));
}
