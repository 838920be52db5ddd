/**
 * Random identifiers (upstream `tools/nanoid`): cryptographically random strings from an alphabet, and the Linux
 * interface names NSM clients generate when the caller gave none (docs/wire-compatibility.md#interface-names).
 */
import { randomInt } from "node:crypto";
import { LINUX_IF_MAX_LENGTH } from "@nsm-ts/api/constants";

/** The alphabet of generated suffixes: `[0-9A-Za-z]`, safe in interface names and URLs. */
export const ALPHANUMERIC = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/** Longest service-name prefix kept in a generated interface name (upstream's value). */
export const IF_NAME_PREFIX_MAX_LENGTH = 10;

/** A random string of `length` characters drawn uniformly from `alphabet` (crypto RNG, no modulo bias). */
export function generateString(length: number, alphabet: string = ALPHANUMERIC): string {
  if (!Number.isInteger(length) || length < 0) throw new RangeError(`nanoid: length must be a non-negative integer, got ${length}`);
  if (alphabet.length === 0) throw new RangeError("nanoid: alphabet must not be empty");
  let out = "";
  for (let i = 0; i < length; i++) out += alphabet[randomInt(alphabet.length)];
  return out;
}

/**
 * An interface name for a connection to network service `ns`: its first ≤10 characters, `-`, and a random
 * `[0-9A-Za-z]` suffix so the name is exactly 15 characters (IFNAMSIZ - 1), as upstream generates them.
 */
export function generateLinuxInterfaceName(ns: string): string {
  const prefix = `${ns.slice(0, IF_NAME_PREFIX_MAX_LENGTH)}-`;
  return prefix + generateString(LINUX_IF_MAX_LENGTH - prefix.length);
}

/** A requested interface name cut to the Linux limit of 15 characters (longer requests are truncated). */
export function truncateLinuxInterfaceName(name: string): string {
  return name.length > LINUX_IF_MAX_LENGTH ? name.slice(0, LINUX_IF_MAX_LENGTH) : name;
}
