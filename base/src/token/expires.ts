/**
 * Token expiry as text on the wire (`nsm-client-token-expires`): RFC 3339 in the shape of Go's
 * `time.RFC3339Nano` — UTC, `Z`, fractional seconds with trailing zeros trimmed (none when whole).
 */

/** A protobuf `google.protobuf.Timestamp`-shaped value (what `PathSegment.expires` holds). */
export interface TimestampLike {
  seconds: bigint;
  nanos: number;
}

/** Formats a time like Go `time.RFC3339Nano` in UTC; a Timestamp keeps its full nanosecond precision. */
export function formatExpires(t: Date | TimestampLike): string {
  let seconds: number;
  let nanos: number;
  if (t instanceof Date) {
    const ms = t.getTime();
    if (!Number.isFinite(ms)) throw new RangeError("formatExpires: invalid Date");
    seconds = Math.floor(ms / 1000);
    nanos = (ms - seconds * 1000) * 1_000_000;
  } else {
    seconds = Number(t.seconds);
    nanos = t.nanos;
    if (!Number.isInteger(nanos) || nanos < 0 || nanos > 999_999_999) {
      throw new RangeError(`formatExpires: nanos ${nanos} out of range`);
    }
  }
  const iso = new Date(seconds * 1000).toISOString();
  // Years outside 0000-9999 print as ±YYYYYY, which RFC 3339 cannot express.
  if (!/^\d{4}-/.test(iso)) throw new RangeError(`formatExpires: year out of RFC 3339 range: ${iso}`);
  const frac = nanos === 0 ? "" : `.${String(nanos).padStart(9, "0").replace(/0+$/, "")}`;
  return `${iso.slice(0, 19)}${frac}Z`;
}

const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(?:([Zz])|([+-])(\d{2}):(\d{2}))$/;

function daysIn(year: number, month: number): number {
  const leap = (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0;
  return [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month - 1] ?? 0;
}

/** Parses any RFC 3339 time (up to 9 fractional digits, `Z` or `±hh:mm`) at full precision; undefined if invalid. */
export function parseExpiresTimestamp(s: string): TimestampLike | undefined {
  const m = RFC3339.exec(s);
  if (!m) return undefined;
  const num = (i: number): number => Number(m[i]);
  const [year, month, day, hour, minute, second] = [num(1), num(2), num(3), num(4), num(5), num(6)];
  if (month < 1 || month > 12 || day < 1 || day > daysIn(year, month)) return undefined;
  if (hour > 23 || minute > 59 || second > 59) return undefined;
  let offsetMin = 0;
  if (m[8] === undefined) {
    const oh = num(10);
    const om = num(11);
    if (oh > 23 || om > 59) return undefined;
    offsetMin = (oh * 60 + om) * (m[9] === "-" ? -1 : 1);
  }
  // setUTCFullYear, unlike Date.UTC, does not map years 0-99 to 1900-1999.
  const d = new Date(0);
  d.setUTCFullYear(year, month - 1, day);
  d.setUTCHours(hour, minute, second, 0);
  const utcMs = d.getTime() - offsetMin * 60_000;
  const nanos = m[7] === undefined ? 0 : Number(m[7].padEnd(9, "0"));
  return { seconds: BigInt(Math.floor(utcMs / 1000)), nanos };
}

/** Parses an RFC 3339 expiry into a Date (sub-millisecond digits are truncated); undefined if invalid. */
export function parseExpires(s: string): Date | undefined {
  const ts = parseExpiresTimestamp(s);
  if (!ts) return undefined;
  return new Date(Number(ts.seconds) * 1000 + Math.floor(ts.nanos / 1_000_000));
}
