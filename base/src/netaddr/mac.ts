/** MAC addresses as 48-bit bigints: parsing (errors name the input) and the canonical lower-case colon form. */
import { Code, fail } from "../status/index.js";

/** Options of the MAC parsers. */
export interface MacOptions {
  /** Accept `-` as well as `:` between octets (`aa-bb-cc-dd-ee-ff`); default false. */
  readonly dashes?: boolean;
}

const macColons = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i;
const macAny = /^[0-9a-f]{2}([:-][0-9a-f]{2}){5}$/i;
const ouiColons = /^[0-9a-f]{2}(:[0-9a-f]{2}){2}$/i;
const ouiAny = /^[0-9a-f]{2}([:-][0-9a-f]{2}){2}$/i;

const octets = (text: string): bigint => BigInt(`0x${text.replace(/[:-]/g, "")}`);

/** Parses a MAC (`aa:bb:cc:dd:ee:ff`, any case) to its 48-bit value; undefined when it is not one. */
export function parseMac(text: string, opts?: MacOptions): bigint | undefined {
  return (opts?.dashes ? macAny : macColons).test(text) ? octets(text) : undefined;
}

/** Parses a MAC or throws InvalidArgument naming `what` and the text. */
export function requireMac(text: string, what?: string, opts?: MacOptions): bigint {
  return parseMac(text, opts) ?? fail(Code.InvalidArgument, `${what ? `${what}: ` : ""}"${text}" is not a MAC address`);
}

/** Parses a three-octet OUI (`fa:16:3e`) to its 24-bit value; undefined when it is not one. */
export function parseOui(text: string, opts?: MacOptions): bigint | undefined {
  return (opts?.dashes ? ouiAny : ouiColons).test(text) ? octets(text) : undefined;
}

/** Formats a 48-bit MAC in lower-case colon form. */
export function formatMac(v: bigint): string {
  return v
    .toString(16)
    .padStart(12, "0")
    .replace(/(..)(?!$)/g, "$1:");
}
