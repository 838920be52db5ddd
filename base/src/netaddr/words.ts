/**
 * The one parser of IP address text: IPv4 dotted quads and IPv6 (with `::` and an embedded IPv4 tail), as
 * 16-bit words, in one pass over the text without slicing it. It accepts exactly what Node's `net.isIP`
 * accepts. Words, not bigints, because LPM lookups parse an address per query: bigint arithmetic would
 * cost more than the lookup.
 */

/** An address family. */
export type IpFamily = 4 | 6;

/** Options of the address parsers. */
export interface IpOptions {
  /**
   * Accept an IPv6 zone (`fe80::1%eth0`), as Node's `net.isIP` does; the zone is checked and dropped.
   * Default false: a zone names an interface of one host, which no prefix or stored address may carry.
   */
  readonly zone?: boolean;
}

/** Options of the prefix parsers. */
export interface PrefixOptions extends IpOptions {
  /** Accept a bare address as a host prefix (/32, /128); default false (the `/len` is required). */
  readonly bare?: boolean;
}

/** An address or prefix as 16-bit words: the form for bit-keyed structures that must not pay for bigints. */
export interface PrefixWords {
  /** 4 or 6. */
  readonly family: IpFamily;
  /** Prefix length in bits (32 or 128 for a bare address). */
  readonly len: number;
  /** The address (host bits included) as 16-bit words, 2 for IPv4 and 8 for IPv6. */
  readonly words: readonly number[];
}

/**
 * Why a text is not a prefix: `form` (no `/len` where one is required, or a length that is not 1–3
 * digits), `address` (the address part), `length` (above 32 or 128).
 */
export type PrefixFault = "form" | "address" | "length";

/** The 32-bit value of the dotted quad in `s[start, end)`, or -1. */
function v4At(s: string, start: number, end: number): number {
  let acc = 0;
  let parts = 0;
  let val = 0;
  let digits = 0;
  for (let i = start; i < end; i++) {
    const c = s.charCodeAt(i);
    if (c === 46) {
      if (digits === 0 || parts === 3) return -1;
      acc = acc * 256 + val;
      parts++;
      val = 0;
      digits = 0;
      continue;
    }
    const d = c - 48;
    // A leading zero would be read as octal by some tools and decimal by others: Node rejects it.
    if (d < 0 || d > 9 || (digits > 0 && val === 0)) return -1;
    val = val * 10 + d;
    if (val > 255) return -1;
    digits++;
  }
  if (digits === 0 || parts !== 3) return -1;
  return acc * 256 + val;
}

/** Hex digit value of a char code, or -1. */
function hexDigit(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 97 && c <= 102) return c - 87;
  if (c >= 65 && c <= 70) return c - 55;
  return -1;
}

/** The eight words of the IPv6 address in `s[start, end)`, or undefined. */
function v6At(s: string, start: number, end: number): number[] | undefined {
  const words: number[] = [];
  let gap = -1;
  let val = 0;
  let digits = 0;
  for (let i = start; i < end; i++) {
    const c = s.charCodeAt(i);
    if (c === 58) {
      if (i + 1 < end && s.charCodeAt(i + 1) === 58) {
        if (gap >= 0) return undefined;
        if (digits) words.push(val);
        else if (i !== start) return undefined;
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
    if (h < 0) {
      if (c !== 46) return undefined;
      // The group that reaches a dot is an IPv4 tail (::ffff:198.51.100.1): two words, and the end.
      const v4 = v4At(s, i - digits, end);
      if (v4 < 0) return undefined;
      words.push(v4 >>> 16, v4 & 0xffff);
      return widen(words, gap);
    }
    if (digits === 4) return undefined;
    val = (val << 4) | h;
    digits++;
  }
  if (digits) words.push(val);
  else if (gap !== words.length) return undefined;
  return widen(words, gap);
}

/** `words` with the zero words "::" at `gap` stands for (at least one), or undefined when they are not eight. */
function widen(words: number[], gap: number): number[] | undefined {
  if (gap < 0) return words.length === 8 ? words : undefined;
  const n = words.length;
  if (n > 7) return undefined;
  // In place, without a second array: this runs once per LPM lookup.
  const fill = 8 - n;
  for (let k = n; k < 8; k++) words.push(0);
  for (let k = n - 1; k >= gap; k--) words[k + fill] = words[k] as number;
  for (let k = gap; k < gap + fill; k++) words[k] = 0;
  return words;
}

/** Whether `s[start, end)` is a zone as Node accepts it: `[0-9A-Za-z.:-]+`. */
function zoneOk(s: string, start: number, end: number): boolean {
  if (start >= end) return false;
  for (let i = start; i < end; i++) {
    const c = s.charCodeAt(i);
    const ok = (c >= 48 && c <= 58) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c === 45 || c === 46;
    if (!ok) return false;
  }
  return true;
}

/** The words of the address in `s[0, end)`: 2 for IPv4, 8 for IPv6; undefined when it is not one. */
function wordsTo(s: string, end: number, zone: boolean | undefined): number[] | undefined {
  const colon = s.indexOf(":");
  if (colon < 0 || colon >= end) {
    const v = v4At(s, 0, end);
    return v < 0 ? undefined : [v >>> 16, v & 0xffff];
  }
  if (zone) {
    const pct = s.indexOf("%");
    if (pct >= 0 && pct < end) {
      if (!zoneOk(s, pct + 1, end)) return undefined;
      return v6At(s, 0, pct);
    }
  }
  return v6At(s, 0, end);
}

/** The address `text` as 16-bit words (2 for IPv4, 8 for IPv6), or undefined when it is not an address. */
export function ipWords(text: string, opts?: IpOptions): number[] | undefined {
  return wordsTo(text, text.length, opts?.zone);
}

/** The family of the address `text`, or undefined when it is not an address (`net.isIP` without the 0). */
export function familyOf(text: string, opts?: IpOptions): IpFamily | undefined {
  const w = wordsTo(text, text.length, opts?.zone);
  return w === undefined ? undefined : w.length === 2 ? 4 : 6;
}

/** Whether `len` is a prefix length of `family` (an integer from 0 to 32 or 128). */
export function isPrefixLength(len: number, family: IpFamily): boolean {
  return Number.isInteger(len) && len >= 0 && len <= (family === 4 ? 32 : 128);
}

/** The 1–3 digit decimal from `start` to the end of `s` ("024" included), or -1. */
function lengthAt(s: string, start: number): number {
  const n = s.length - start;
  if (n < 1 || n > 3) return -1;
  let v = 0;
  for (let i = start; i < s.length; i++) {
    const d = s.charCodeAt(i) - 48;
    if (d < 0 || d > 9) return -1;
    v = v * 10 + d;
  }
  return v;
}

/**
 * Reads `addr/len` (or, with `bare`, a bare address as a full-length prefix) as words, host bits kept;
 * returns why when the text is not one, for callers that word their own errors.
 */
export function readPrefix(text: string, opts?: PrefixOptions): PrefixWords | PrefixFault {
  const slash = text.indexOf("/");
  if (slash < 0 && !opts?.bare) return "form";
  const words = wordsTo(text, slash < 0 ? text.length : slash, opts?.zone);
  if (words === undefined) return "address";
  const family: IpFamily = words.length === 2 ? 4 : 6;
  const max = family === 4 ? 32 : 128;
  if (slash < 0) return { family, len: max, words };
  const len = lengthAt(text, slash + 1);
  if (len < 0) return "form";
  if (len > max) return "length";
  return { family, len, words };
}
