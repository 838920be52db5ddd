/**
 * A DNS server on UDP and TCP (same address and port) in front of a handler chain. Every packet is decoded with
 * dns-packet; what is not a well-formed query is counted (`nsm_dns_malformed_packets_total`) and dropped, or
 * answered FORMERR when it is a query with the wrong number of questions. Nothing a client sends can throw out
 * of the socket handlers. Each query gets `queryTimeoutMs` on the injected clock, then SERVFAIL.
 */
import { createSocket, type RemoteInfo, type Socket as UdpSocket } from "node:dgram";
import { once } from "node:events";
import { createServer as createTcpServer, isIP, type Socket, type Server as TcpServer } from "node:net";
import { type Clock, realClock } from "@nsm-ts/base/clock";
import { type Logger, silentLogger } from "@nsm-ts/base/log";
import type { Registry } from "prom-client";
import { type DnsServerAddress, formatServerAddress, parseServerAddress } from "./exchange.js";
import type { DnsNext } from "./handler.js";
import { type DnsMessage, decodeMessage, Rcode, rcodeOf, replyTo, withId } from "./message.js";
import { DnsCounters, type DnsServerStats } from "./metrics.js";

/** Options of `createDnsServer`. */
export interface DnsServerOptions {
  /** Clock of the query and idle timeouts; default the real one. */
  clock?: Clock;
  /** Logger; default silent. */
  log?: Logger;
  /** Prometheus registry for the counters (`DnsCounters`); default none (counts via `stats()` only). */
  registry?: Registry;
  /** Time a query may take through the chain before it is answered SERVFAIL; default 5000 ms (upstream's). */
  queryTimeoutMs?: number;
  /** Queries in flight at once; more are dropped and counted; default 1024. */
  maxInFlight?: number;
  /** Also serve TCP on the same port; default true. */
  tcp?: boolean;
  /** A TCP connection idle this long is closed; default 10 000 ms. */
  tcpIdleTimeoutMs?: number;
}

/** A DNS server; `listen` once, `close` when done. */
export interface DnsServer {
  /** Binds UDP (and TCP) on `ip:port` (`[ipv6]:port`; port 0 picks a free one); resolves with the bound address. */
  listen(address: string): Promise<DnsServerAddress>;
  /** The bound address, once listening. */
  readonly address: DnsServerAddress | undefined;
  /** Counts so far. */
  stats(): DnsServerStats;
  /** Stops listening, aborts queries in flight and closes TCP connections. */
  close(): Promise<void>;
}

const MAX_UDP_DEFAULT = 512;
const MAX_UDP_EDNS = 4096;

/** The largest UDP answer the client can take: 512, or its EDNS buffer size (RFC 6891), capped at 4096. */
function udpLimit(query: DnsMessage): number {
  const opt = query.packet.additionals?.find((a) => a.type === "OPT");
  const size = opt && "udpPayloadSize" in opt ? opt.udpPayloadSize : 0;
  return Math.min(MAX_UDP_EDNS, Math.max(MAX_UDP_DEFAULT, size || 0));
}

/** Creates a DNS server answering through `handler`. */
export function createDnsServer(handler: DnsNext, opts: DnsServerOptions = {}): DnsServer {
  const clock = opts.clock ?? realClock;
  const log = opts.log ?? silentLogger;
  const counters = new DnsCounters(opts.registry);
  const timeoutMs = opts.queryTimeoutMs ?? 5000;
  const maxInFlight = opts.maxInFlight ?? 1024;
  const lifetime = new AbortController();
  const conns = new Set<Socket>();
  let inFlight = 0;
  let udp: UdpSocket | undefined;
  let tcp: TcpServer | undefined;
  let bound: DnsServerAddress | undefined;

  /** The answer bytes for one packet, or undefined to send nothing. Never throws. */
  async function answer(raw: Buffer, transport: "udp" | "tcp"): Promise<Buffer | undefined> {
    let query: DnsMessage;
    try {
      query = decodeMessage(raw);
    } catch {
      counters.malformed("undecodable", transport);
      return undefined;
    }
    try {
      if (query.packet.type !== "query") {
        counters.malformed("not-a-query", transport);
        return undefined;
      }
      if ((query.packet.questions?.length ?? 0) !== 1) {
        counters.malformed("question-count", transport);
        return replyTo(query, Rcode.FORMERR).raw;
      }
      if ((query.packet as { opcode?: string }).opcode !== "QUERY") return replyTo(query, Rcode.NOTIMP).raw;
      if (inFlight >= maxInFlight) {
        counters.overloaded(transport);
        return undefined;
      }
      inFlight++;
      const ac = new AbortController();
      const onEnd = (): void => ac.abort();
      lifetime.signal.addEventListener("abort", onEnd, { once: true });
      const timer = clock.setTimer(timeoutMs, onEnd);
      try {
        // Time up (or closing): SERVFAIL, built here rather than in the listener, where a throw would escape.
        const expired = new Promise<undefined>((resolve) => {
          ac.signal.addEventListener("abort", () => resolve(undefined), { once: true });
        });
        const handled = handler({ query, signal: ac.signal, log }).catch((err: unknown) => {
          log.warn({ err }, "dns: handler chain failed; answering SERVFAIL");
          return undefined;
        });
        let reply = (await Promise.race([handled, expired])) ?? replyTo(query, Rcode.SERVFAIL);
        if (transport === "udp" && reply.raw.length > udpLimit(query)) {
          reply = replyTo(query, rcodeOf(reply), [], { truncated: true });
        }
        counters.answered(rcodeOf(reply), transport);
        return withId(reply.raw, query.packet.id ?? 0);
      } finally {
        inFlight--;
        timer.stop();
        ac.abort();
        lifetime.signal.removeEventListener("abort", onEnd);
      }
    } catch (err) {
      // A query dns-packet could read but not write back (an odd record in it): count it, never crash.
      log.debug({ err }, "dns: cannot answer a packet");
      counters.malformed("undecodable", transport);
      return undefined;
    }
  }

  function onUdp(raw: Buffer, from: RemoteInfo): void {
    void answer(raw, "udp").then((out) => {
      if (out && udp && !lifetime.signal.aborted) udp.send(out, from.port, from.address, () => {});
    });
  }

  function onTcp(sock: Socket): void {
    if (conns.size >= 256) {
      counters.overloaded("tcp");
      sock.destroy();
      return;
    }
    conns.add(sock);
    let buf = Buffer.alloc(0);
    let idle = clock.setTimer(opts.tcpIdleTimeoutMs ?? 10_000, () => sock.destroy());
    sock.on("error", () => {});
    sock.on("close", () => {
      idle.stop();
      conns.delete(sock);
    });
    sock.on("data", (chunk: Buffer) => {
      idle.stop();
      idle = clock.setTimer(opts.tcpIdleTimeoutMs ?? 10_000, () => sock.destroy());
      buf = Buffer.concat([buf, chunk]);
      // Each message is prefixed by its two-byte length (RFC 1035 §4.2.2).
      while (buf.length >= 2) {
        const len = buf.readUInt16BE(0);
        if (buf.length < 2 + len) break;
        const frame = buf.subarray(2, 2 + len);
        buf = buf.subarray(2 + len);
        void answer(Buffer.from(frame), "tcp").then((out) => {
          if (!out || sock.destroyed) return;
          const head = Buffer.alloc(2);
          head.writeUInt16BE(out.length, 0);
          sock.write(Buffer.concat([head, out]));
        });
      }
    });
  }

  return {
    get address() {
      return bound;
    },
    async listen(address) {
      const at = parseServerAddress(address, 53, true);
      if (!at) throw new TypeError(`dns: cannot listen on ${JSON.stringify(address)}: want ip:port`);
      // With port 0 the UDP port may be taken for TCP: try a few times.
      for (let attempt = 0; ; attempt++) {
        const sock = createSocket({ type: isIP(at.host) === 6 ? "udp6" : "udp4" });
        try {
          sock.bind(at.port, at.host);
          await once(sock, "listening");
        } catch (err) {
          sock.close();
          throw err;
        }
        const port = sock.address().port;
        if (opts.tcp !== false) {
          const server = createTcpServer(onTcp);
          try {
            server.listen(port, at.host);
            await once(server, "listening");
          } catch (err) {
            sock.close();
            if (at.port === 0 && attempt < 5) continue;
            throw err;
          }
          tcp = server;
        }
        sock.on("message", onUdp);
        sock.on("error", (err) => log.warn({ err }, "dns: udp socket error"));
        udp = sock;
        bound = { host: at.host, port };
        break;
      }
      log.info({ address: formatServerAddress(bound), tcp: opts.tcp !== false }, "dns: serving");
      return bound;
    },
    stats: () => counters.stats(),
    async close() {
      lifetime.abort();
      udp?.close();
      udp = undefined;
      for (const c of conns) c.destroy();
      if (tcp) {
        const t = tcp;
        tcp = undefined;
        await new Promise<void>((resolve) => t.close(() => resolve()));
      }
    },
  };
}
