/**
 * DNS messages as the handlers pass them around: the decoded packet (dns-packet) beside the exact bytes, so a
 * forwarded answer reaches the client byte for byte as the upstream server sent it (a decode–encode round trip
 * could drop record types dns-packet does not model).
 */
import { type Answer, type DecodedPacket, decode, encode, type Question, RECURSION_AVAILABLE, RECURSION_DESIRED } from "dns-packet";

/** Response codes used here (RFC 1035 §4.1.1). */
export const Rcode = { NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, NOTIMP: 4, REFUSED: 5 } as const;

/** A DNS message: decoded, and its wire bytes. */
export interface DnsMessage {
  readonly packet: DecodedPacket;
  readonly raw: Buffer;
}

/** Decodes wire bytes; throws on anything dns-packet cannot read (callers count and drop it). */
export function decodeMessage(raw: Buffer): DnsMessage {
  const packet = decode(raw);
  if (decode.bytes > raw.length) throw new RangeError("dns: message shorter than its contents");
  return { packet, raw };
}

/** The response code of a message (the low four bits of the header flags). */
export function rcodeOf(m: DnsMessage): number {
  return (m.packet.flags ?? 0) & 0xf;
}

/** The one question of a query, or undefined when it has none. */
export function questionOf(m: DnsMessage): Question | undefined {
  return m.packet.questions?.[0];
}

/** Lower-cased name without the trailing dot: the form names are compared and stored in. */
export function normalizeName(name: string): string {
  return name.toLowerCase().replace(/\.+$/, "");
}

/** The header id is the first two bytes of every DNS message (RFC 1035 §4.1.1): copies `raw` with `id` there. */
export function withId(raw: Buffer, id: number): Buffer {
  const out = Buffer.from(raw);
  out.writeUInt16BE(id & 0xffff, 0);
  return out;
}

/** Options of `replyTo`. */
export interface ReplyOptions {
  /** Set the AA flag (an answer from names this server holds). */
  authoritative?: boolean;
  /** Set the TC flag (the answer did not fit in a UDP datagram). */
  truncated?: boolean;
}

const AUTHORITATIVE = 1 << 10;
const TRUNCATED = 1 << 9;

/** Builds the response to `query`: its id, question and RD flag, `rcode`, and `answers`. */
export function replyTo(query: DnsMessage, rcode: number, answers: Answer[] = [], opts: ReplyOptions = {}): DnsMessage {
  let flags = ((query.packet.flags ?? 0) & RECURSION_DESIRED) | RECURSION_AVAILABLE | (rcode & 0xf);
  if (opts.authoritative) flags |= AUTHORITATIVE;
  if (opts.truncated) flags |= TRUNCATED;
  const raw = encode({
    type: "response",
    id: query.packet.id ?? 0,
    flags,
    questions: query.packet.questions ?? [],
    answers,
  });
  return decodeMessage(raw);
}

/** Builds a query (clients and tests). */
export function buildQuery(name: string, type: Question["type"], opts: { id?: number; recursionDesired?: boolean } = {}): DnsMessage {
  const raw = encode({
    type: "query",
    id: opts.id ?? Math.floor(Math.random() * 0x10000),
    flags: opts.recursionDesired === false ? 0 : RECURSION_DESIRED,
    questions: [{ type, name, class: "IN" }],
  });
  return decodeMessage(raw);
}

/** `query` with the RD flag cleared (a question for one server's own names, never to be forwarded further). */
export function withoutRecursion(query: DnsMessage): DnsMessage {
  const raw = Buffer.from(query.raw);
  // Flags are bytes 2–3 of the header; RD is bit 8 of them (RFC 1035 §4.1.1).
  raw.writeUInt16BE(raw.readUInt16BE(2) & ~RECURSION_DESIRED & 0xffff, 2);
  return decodeMessage(raw);
}

/** True when the query asks for recursion (RD set). */
export function recursionDesired(m: DnsMessage): boolean {
  return m.packet.flag_rd;
}
