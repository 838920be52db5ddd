/**
 * The DNS forwarder on loopback: routing by search domain, fan-out (first NOERROR wins), the fallback resolver,
 * TCP, truncation, and malformed packets (fuzzed: counted, never a crash).
 */
import { createSocket } from "node:dgram";
import { once } from "node:events";
import { connect } from "node:net";
import { MockClock } from "@nsm-ts/base/clock";
import { silentLogger } from "@nsm-ts/base/log";
import { Cleanup, namesServer, silentServer } from "@nsm-ts/testing/dns";
import { expect } from "chai";
import { decode, encode } from "dns-packet";
import fc from "fast-check";
import { Registry } from "prom-client";
import { type DnsServerAddress, exchangeTcp, exchangeUdp, parseServerAddress } from "./exchange.js";
import { fanout } from "./fanout.js";
import { dnsChain } from "./handler.js";
import { buildQuery, type DnsMessage, decodeMessage, Rcode, rcodeOf, replyTo } from "./message.js";
import { type DnsConfigLike, newRouteHandler, routeServers } from "./route.js";
import { createDnsServer, type DnsServer } from "./server.js";

const addr = (s: string): DnsServerAddress => parseServerAddress(s) ?? { host: "invalid", port: 0 };
const ipsOf = (m: DnsMessage): string[] => (m.packet.answers ?? []).map((a) => String("data" in a ? a.data : ""));
const ask = (server: string, name: string, type: "A" | "AAAA" = "A"): Promise<DnsMessage> =>
  exchangeUdp(addr(server), buildQuery(name, type), { timeoutMs: 5000 });

describe("dns: routing by search domain", () => {
  const configs: DnsConfigLike[] = [
    { dnsServerIps: ["198.51.100.1"], searchDomains: ["svc"] },
    { dnsServerIps: ["198.51.100.2", "198.51.100.3:5353"], searchDomains: ["ns.svc"] },
    { dnsServerIps: ["198.51.100.4"], searchDomains: ["ns.svc"] },
    { dnsServerIps: ["203.0.113.9", "not-an-ip"], searchDomains: [] },
  ];
  const hosts = (name: string): string[] => routeServers(name, configs).map((s) => `${s.host}:${s.port}`);

  it("the longest matching search domain wins; configs sharing it are fanned out together", () => {
    expect(hosts("nsc-1.ns.svc.")).to.deep.equal(["198.51.100.2:53", "198.51.100.3:5353", "198.51.100.4:53"]);
    expect(hosts("NSC-1.Other.SVC")).to.deep.equal(["198.51.100.1:53"]);
  });

  it("other names go to configs without search domains; unparsable server entries are skipped", () => {
    expect(hosts("example.org.")).to.deep.equal(["203.0.113.9:53"]);
    expect(routeServers("svcx.", configs).map((s) => s.host)).to.deep.equal(["203.0.113.9"]);
  });

  it("excluded servers (our own address) are never chosen", () => {
    expect(routeServers("a.svc", configs, [addr("198.51.100.1")])).to.deep.equal([]);
  });
});

describe("dns: fan-out", () => {
  const cleanup = new Cleanup();
  afterEach(() => cleanup.run());
  const req = (ac = new AbortController()) => ({ query: buildQuery("x.svc", "A"), signal: ac.signal, log: silentLogger });

  it("the first NOERROR answer wins and the slower exchanges are cancelled", async () => {
    const aborted: string[] = [];
    let releaseSlow: (m: DnsMessage) => void = () => {};
    const answer = await fanout([addr("198.51.100.1"), addr("198.51.100.2"), addr("198.51.100.3")], req(), {
      exchange: (server, query, opts) =>
        new Promise<DnsMessage>((resolve, reject) => {
          if (server.host === "198.51.100.1") resolve(replyTo(query, Rcode.NXDOMAIN));
          if (server.host === "198.51.100.2") {
            releaseSlow = resolve;
            opts?.signal?.addEventListener("abort", () => {
              aborted.push(server.host);
              reject(new Error("aborted"));
            });
          }
          if (server.host === "198.51.100.3") queueMicrotask(() => resolve(replyTo(query, Rcode.NOERROR)));
        }),
    });
    releaseSlow(replyTo(buildQuery("x.svc", "A"), Rcode.SERVFAIL));
    expect(answer && rcodeOf(answer)).to.equal(Rcode.NOERROR);
    expect(aborted).to.deep.equal(["198.51.100.2"]);
  });

  it("without a NOERROR answer, NXDOMAIN beats SERVFAIL; with no answer at all, undefined", async () => {
    const answers: Record<string, number> = { "198.51.100.1": Rcode.SERVFAIL, "198.51.100.2": Rcode.NXDOMAIN };
    const best = await fanout([addr("198.51.100.1"), addr("198.51.100.2")], req(), {
      exchange: async (server, query) => replyTo(query, answers[server.host] ?? Rcode.REFUSED),
    });
    expect(best && rcodeOf(best)).to.equal(Rcode.NXDOMAIN);
    const none = await fanout([addr("198.51.100.1")], req(), { exchange: () => Promise.reject(new Error("down")) });
    expect(none).to.equal(undefined);
  });

  it("a server that never answers times out on the injected clock and leaves no timer", async () => {
    const dead = await silentServer(cleanup);
    const clock = new MockClock();
    const pending = exchangeUdp(addr(dead.at), buildQuery("x.svc", "A"), { clock, timeoutMs: 2000 });
    let outcome = "";
    const done = pending.then(
      () => {
        outcome = "answered";
      },
      (e: Error) => {
        outcome = e.message;
      },
    );
    await clock.untilPending();
    await clock.advance(1999);
    expect(outcome, "still waiting at 1999 ms").to.equal("");
    await clock.advance(1);
    await done;
    expect(outcome).to.match(/timed out after 2000 ms/);
    expect(dead.received()).to.equal(1);
    expect(clock.pending()).to.equal(0);
  });
});

describe("dns: forwarder over loopback", function () {
  this.timeout(30_000);
  const cleanup = new Cleanup();
  afterEach(() => cleanup.run());

  async function forwarder(configs: DnsConfigLike[], fallback: string[], registry?: Registry): Promise<{ server: DnsServer; at: string }> {
    const server = createDnsServer(dnsChain(newRouteHandler(() => configs, { fallback: () => fallback.map(addr), timeoutMs: 1000 })), {
      ...(registry ? { registry } : {}),
    });
    const a = await server.listen("127.0.0.1:0");
    cleanup.add(() => server.close());
    return { server, at: `${a.host}:${a.port}` };
  }

  it("routes each name to its config's servers, and other names to the original resolver", async () => {
    const a = await namesServer(cleanup, { "nsc-1.alpha": ["169.254.1.1"] });
    const b = await namesServer(cleanup, { "nsc-2.beta": ["169.254.2.2", "fd00::2"] });
    const orig = await namesServer(cleanup, { "outside.example": ["203.0.113.80"], "nsc-9.beta": ["203.0.113.99"] });
    const fwd = await forwarder(
      [
        { dnsServerIps: [a.at], searchDomains: ["alpha"] },
        { dnsServerIps: [b.at], searchDomains: ["beta"] },
      ],
      [orig.at],
    );
    expect(ipsOf(await ask(fwd.at, "nsc-1.alpha."))).to.deep.equal(["169.254.1.1"]);
    expect(ipsOf(await ask(fwd.at, "NSC-2.beta"))).to.deep.equal(["169.254.2.2"]);
    expect(ipsOf(await ask(fwd.at, "nsc-2.beta", "AAAA"))).to.deep.equal(["fd00::2"]);
    expect(ipsOf(await ask(fwd.at, "outside.example."))).to.deep.equal(["203.0.113.80"]);
    // Not known to beta's server (NXDOMAIN there): the original resolver is asked too.
    expect(ipsOf(await ask(fwd.at, "nsc-9.beta."))).to.deep.equal(["203.0.113.99"]);
    expect(rcodeOf(await ask(fwd.at, "nobody.alpha."))).to.equal(Rcode.NXDOMAIN);
    expect(a.server.stats().answered.NOERROR).to.equal(1);
    expect(orig.server.stats().answered.NOERROR).to.equal(2);
  });

  it("fans out to every server of a config: a dead one does not delay the live one's answer", async () => {
    const dead = await silentServer(cleanup);
    const live = await namesServer(cleanup, { "nsc-1.alpha": ["169.254.1.1"] });
    const fwd = await forwarder([{ dnsServerIps: [dead.at, live.at], searchDomains: ["alpha"] }], []);
    expect(ipsOf(await ask(fwd.at, "nsc-1.alpha."))).to.deep.equal(["169.254.1.1"]);
    expect(dead.received()).to.equal(1);
  });

  it("answers over TCP, and a UDP answer too big for 512 bytes comes back truncated", async () => {
    const many = Array.from({ length: 40 }, (_, i) => `169.254.3.${i + 1}`);
    const a = await namesServer(cleanup, { "big.alpha": many, "nsc-1.alpha": ["169.254.1.1"] });
    const fwd = await forwarder([{ dnsServerIps: [a.at], searchDomains: ["alpha"] }], []);
    expect(ipsOf(await exchangeTcp(addr(fwd.at), buildQuery("nsc-1.alpha", "A"), { timeoutMs: 5000 }))).to.deep.equal(["169.254.1.1"]);
    const udp = await ask(fwd.at, "big.alpha");
    expect(udp.packet.flag_tc, "truncated over UDP").to.equal(true);
    expect(ipsOf(await exchangeTcp(addr(fwd.at), buildQuery("big.alpha", "A"), { timeoutMs: 5000 }))).to.have.length(40);
  });

  it("fuzz: random bytes at UDP are dropped and counted (prom-client series too), never a crash", async () => {
    const registry = new Registry();
    const a = await namesServer(cleanup, { "nsc-1.alpha": ["169.254.1.1"] });
    const fwd = await forwarder([{ dnsServerIps: [a.at], searchDomains: ["alpha"] }], [], registry);
    const sock = createSocket("udp4");
    cleanup.add(() => {
      sock.close();
    });
    let expected = 0;
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ minLength: 0, maxLength: 600 }), async (bytes) => {
        const raw = Buffer.from(bytes);
        try {
          const p = decode(raw);
          if (p.type !== "query" || (p.questions?.length ?? 0) !== 1) expected++;
          else replyTo(decodeMessage(raw), Rcode.SERVFAIL); // a query that cannot be answered is counted too
        } catch {
          expected++;
        }
        await new Promise<void>((resolve) => sock.send(raw, Number(fwd.at.split(":")[1]), "127.0.0.1", () => resolve()));
        // Let the server read it before the next one (a burst would overflow the socket's receive buffer).
        expect(ipsOf(await ask(fwd.at, "nsc-1.alpha"))).to.deep.equal(["169.254.1.1"]);
      }),
      { numRuns: 500 },
    );
    // Packets are counted as they arrive, so before the probe that followed each was answered.
    const malformed = Object.values(fwd.server.stats().malformed).reduce((x, y) => x + (y ?? 0), 0);
    expect(expected, "fast-check produced undecodable packets").to.be.greaterThan(400);
    expect(malformed).to.equal(expected);
    const series = await registry.getSingleMetric("nsm_dns_malformed_packets_total")?.get();
    expect(series?.values.reduce((x, v) => x + v.value, 0)).to.equal(expected);
  });

  it("fuzz: random bytes and frames over TCP never crash the server", async () => {
    const a = await namesServer(cleanup, { "nsc-1.alpha": ["169.254.1.1"] });
    const fwd = await forwarder([{ dnsServerIps: [a.at], searchDomains: ["alpha"] }], []);
    const port = Number(fwd.at.split(":")[1]);
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ minLength: 1, maxLength: 300 }), fc.boolean(), async (bytes, framed) => {
        const sock = connect({ host: "127.0.0.1", port });
        await once(sock, "connect");
        const body = Buffer.from(bytes);
        const head = Buffer.alloc(2);
        head.writeUInt16BE(body.length, 0);
        sock.end(framed ? Buffer.concat([head, body]) : body);
        sock.on("error", () => {});
        sock.resume();
        await once(sock, "close");
      }),
      { numRuns: 100 },
    );
    expect(ipsOf(await exchangeTcp(addr(fwd.at), buildQuery("nsc-1.alpha", "A"), { timeoutMs: 5000 }))).to.deep.equal(["169.254.1.1"]);
    expect(fwd.server.stats().malformed.undecodable ?? 0).to.be.greaterThan(0);
  });

  it("a query the chain does not answer in time is answered SERVFAIL at queryTimeoutMs on the injected clock", async () => {
    const clock = new MockClock();
    const server = createDnsServer(dnsChain({ name: "never", serve: (req) => new Promise<DnsMessage>(() => void req) }), {
      clock,
      queryTimeoutMs: 5000,
    });
    const at = await server.listen("127.0.0.1:0");
    cleanup.add(() => server.close());
    const answer = exchangeUdp(at, buildQuery("slow.alpha", "A"), { timeoutMs: 10_000 });
    await clock.untilPending();
    await clock.advance(5000);
    expect(rcodeOf(await answer)).to.equal(Rcode.SERVFAIL);
    expect(server.stats().answered).to.deep.equal({ SERVFAIL: 1 });
    expect(clock.pending()).to.equal(0);
  });

  it("a response packet sent as a query, and a query with two questions, are counted malformed", async () => {
    const fwd = await forwarder([], []);
    const sock = createSocket("udp4");
    cleanup.add(() => {
      sock.close();
    });
    const port = Number(fwd.at.split(":")[1]);
    const two = encode({
      type: "query",
      id: 7,
      questions: [
        { type: "A", name: "a.alpha" },
        { type: "A", name: "b.alpha" },
      ],
    });
    sock.send(two, port, "127.0.0.1");
    const [reply] = (await once(sock, "message")) as [Buffer];
    expect((decode(reply).flags ?? 0) & 0xf).to.equal(Rcode.FORMERR);
    sock.send(encode({ type: "response", id: 8, questions: [{ type: "A", name: "a.alpha" }] }), port, "127.0.0.1");
    // Synchronize on an answered query after it.
    sock.send(two, port, "127.0.0.1");
    await once(sock, "message");
    expect(fwd.server.stats().malformed).to.deep.equal({ "question-count": 2, "not-a-query": 1 });
  });
});
