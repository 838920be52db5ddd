/**
 * Sends one query to one DNS server and waits for its answer: UDP from a fresh socket (a random source port per
 * query), TCP when the answer comes back truncated. The query keeps its id, so a loop guard downstream
 * (`newNoLoopHandler`) recognises it if it comes back. Answers whose id or question do not match are ignored,
 * as a stub resolver does.
 */
import { createSocket } from "node:dgram";
import { isIP, type Socket, connect as tcpConnect } from "node:net";
import { type Clock, realClock } from "@nsm-ts/base/clock";
import { type DnsMessage, decodeMessage, normalizeName, questionOf } from "./message.js";

/** Where a DNS server listens. */
export interface DnsServerAddress {
  readonly host: string;
  readonly port: number;
}

/**
 * Reads a `dns_server_ips` entry: an IP (port 53), `ip:port` or `[ipv6]:port`. Undefined for anything else
 * (a host name, a bad port): DNS configs come from the wire and are checked, not trusted.
 */
export function parseServerAddress(s: string, defaultPort = 53, allowPortZero = false): DnsServerAddress | undefined {
  const v = s.trim();
  if (isIP(v)) return { host: v, port: defaultPort };
  const m = /^\[([^\]]+)\]:(\d{1,5})$/.exec(v) ?? /^([^:]+):(\d{1,5})$/.exec(v);
  if (!m?.[1] || !m[2] || !isIP(m[1])) return undefined;
  const port = Number(m[2]);
  return (port > 0 || allowPortZero) && port < 65536 ? { host: m[1], port } : undefined;
}

/** `host:port`, IPv6 in brackets: how addresses are logged and compared. */
export function formatServerAddress(a: DnsServerAddress): string {
  return isIP(a.host) === 6 ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`;
}

/** Options of one exchange. */
export interface ExchangeOptions {
  /** Aborts the exchange (the fan-out cancels the losers). */
  signal?: AbortSignal;
  /** Give up after this long; default 2000 ms. */
  timeoutMs?: number;
  /** Clock of the timeout; default the real one. */
  clock?: Clock;
}

/** Sends `query` to `server`; resolves with its answer (carrying the query's id), rejects on timeout or error. */
export type Exchange = (server: DnsServerAddress, query: DnsMessage, opts?: ExchangeOptions) => Promise<DnsMessage>;

function matches(query: DnsMessage, answer: DnsMessage, id: number): boolean {
  const q = questionOf(query);
  const a = questionOf(answer);
  return (
    answer.packet.type === "response" &&
    answer.packet.id === id &&
    q !== undefined &&
    a !== undefined &&
    q.type === a.type &&
    normalizeName(q.name) === normalizeName(a.name)
  );
}

/** Runs `body` with a deadline and abort handling; `body` registers its cleanup through `onEnd`. */
function bounded<T>(
  opts: ExchangeOptions,
  what: string,
  body: (resolve: (v: T) => void, reject: (e: Error) => void, onEnd: (fn: () => void) => void) => void,
): Promise<T> {
  const clock = opts.clock ?? realClock;
  return new Promise<T>((resolve, reject) => {
    const cleanups: Array<() => void> = [];
    let done = false;
    const finish = (): void => {
      done = true;
      timer.stop();
      opts.signal?.removeEventListener("abort", onAbort);
      for (const c of cleanups) c();
    };
    const onAbort = (): void => {
      if (done) return;
      finish();
      reject(new Error(`dns: ${what} aborted`));
    };
    const timer = clock.setTimer(opts.timeoutMs ?? 2000, () => {
      if (done) return;
      finish();
      reject(new Error(`dns: ${what} timed out after ${opts.timeoutMs ?? 2000} ms`));
    });
    if (opts.signal?.aborted) {
      onAbort();
      return;
    }
    opts.signal?.addEventListener("abort", onAbort, { once: true });
    body(
      (v) => {
        if (done) return;
        finish();
        resolve(v);
      },
      (e) => {
        if (done) return;
        finish();
        reject(e);
      },
      (fn) => cleanups.push(fn),
    );
  });
}

/** The default exchange: UDP, then TCP when the UDP answer is truncated. */
export const exchange: Exchange = async (server, query, opts = {}) => {
  const answer = await exchangeUdp(server, query, opts);
  if (!answer.packet.flag_tc) return answer;
  return exchangeTcp(server, query, opts);
};

/** One query over UDP. */
export function exchangeUdp(server: DnsServerAddress, query: DnsMessage, opts: ExchangeOptions = {}): Promise<DnsMessage> {
  const id = query.packet.id ?? 0;
  return bounded<DnsMessage>(opts, `udp query to ${formatServerAddress(server)}`, (resolve, reject, onEnd) => {
    const sock = createSocket(isIP(server.host) === 6 ? "udp6" : "udp4");
    onEnd(() => sock.close());
    sock.on("error", reject);
    sock.on("message", (raw) => {
      let answer: DnsMessage;
      try {
        answer = decodeMessage(raw);
      } catch {
        return; // not an answer to us; keep waiting
      }
      if (matches(query, answer, id)) resolve(answer);
    });
    sock.send(query.raw, server.port, server.host, (err) => {
      if (err) reject(err);
    });
  });
}

/** One query over TCP (two-byte length prefix, RFC 1035 §4.2.2). */
export function exchangeTcp(server: DnsServerAddress, query: DnsMessage, opts: ExchangeOptions = {}): Promise<DnsMessage> {
  const id = query.packet.id ?? 0;
  return bounded<DnsMessage>(opts, `tcp query to ${formatServerAddress(server)}`, (resolve, reject, onEnd) => {
    const sock: Socket = tcpConnect({ host: server.host, port: server.port });
    onEnd(() => sock.destroy());
    let buf = Buffer.alloc(0);
    sock.on("error", reject);
    sock.on("close", () => reject(new Error(`dns: ${formatServerAddress(server)} closed the connection without an answer`)));
    sock.on("data", (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      while (buf.length >= 2) {
        const len = buf.readUInt16BE(0);
        if (buf.length < 2 + len) return;
        const frame = buf.subarray(2, 2 + len);
        buf = buf.subarray(2 + len);
        try {
          const answer = decodeMessage(frame);
          if (matches(query, answer, id)) {
            resolve(answer);
            return;
          }
        } catch {
          // an undecodable frame: wait for the next or the timeout
        }
      }
    });
    const payload = query.raw;
    const len = Buffer.alloc(2);
    len.writeUInt16BE(payload.length, 0);
    sock.write(Buffer.concat([len, payload]));
  });
}
