/** Member names in memory: records, answers, and the member-name server asking its peers one hop only. */
import { silentLogger } from "@nsm-ts/base/log";
import { Cleanup } from "@nsm-ts/testing/dns";
import { expect } from "chai";
import { type DnsServerAddress, exchangeUdp } from "./exchange.js";
import { dnsChain } from "./handler.js";
import { createMemberDnsServer, type MemberDnsServer } from "./member.js";
import { MemoryRecords, newMemoryHandler, newNoLoopHandler } from "./memory.js";
import { buildQuery, type DnsMessage, Rcode, rcodeOf } from "./message.js";

const ipsOf = (m: DnsMessage): string[] => (m.packet.answers ?? []).map((a) => String("data" in a ? a.data : ""));
const serve = (records: MemoryRecords, name: string, type: "A" | "AAAA" | "TXT" | "PTR" = "A") =>
  dnsChain(newMemoryHandler(records))({ query: buildQuery(name, type), signal: new AbortController().signal, log: silentLogger });

describe("dns: memory records", () => {
  it("adds and removes names (case and trailing dot do not matter) and tells listeners", async () => {
    const records = new MemoryRecords();
    const seen: Array<[string, readonly string[] | undefined]> = [];
    const off = records.onChange((n, ips) => seen.push([n, ips]));
    records.set("NSC-1.My-Vl3.", ["169.254.10.1/32", "fd00::a/128"]);
    expect(records.get("nsc-1.my-vl3")).to.deep.equal(["169.254.10.1", "fd00::a"]);
    const a = await serve(records, "nsc-1.my-vl3.");
    expect(rcodeOf(a)).to.equal(Rcode.NOERROR);
    expect(a.packet.flag_aa, "authoritative").to.equal(true);
    expect(ipsOf(a)).to.deep.equal(["169.254.10.1"]);
    expect(ipsOf(await serve(records, "nsc-1.my-vl3", "AAAA"))).to.deep.equal(["fd00::a"]);
    // A held name without records of the asked type: NOERROR, no records (NODATA).
    const txt = await serve(records, "nsc-1.my-vl3", "TXT");
    expect([rcodeOf(txt), ipsOf(txt)]).to.deep.equal([Rcode.NOERROR, []]);
    expect(records.delete("nsc-1.MY-VL3.")).to.equal(true);
    expect(records.delete("nsc-1.my-vl3")).to.equal(false);
    // Not held any more: the chain's end answers (SERVFAIL here; the member server ends in NXDOMAIN).
    expect(rcodeOf(await serve(records, "nsc-1.my-vl3"))).to.equal(Rcode.SERVFAIL);
    off();
    records.set("nsc-2.my-vl3", ["169.254.10.2"]);
    expect(seen).to.deep.equal([
      ["nsc-1.my-vl3", ["169.254.10.1", "fd00::a"]],
      ["nsc-1.my-vl3", undefined],
    ]);
    expect(() => records.set("x.my-vl3", ["not-an-ip"])).to.throw(/not an IP address/);
  });

  it("answers PTR for held addresses, IPv4 and IPv6", async () => {
    const records = new MemoryRecords();
    records.set("nsc-1.my-vl3", ["169.254.10.1", "fd00:0:0::a"]);
    const v4 = await serve(records, "1.10.254.169.in-addr.arpa", "PTR");
    expect([rcodeOf(v4), ipsOf(v4)]).to.deep.equal([Rcode.NOERROR, ["nsc-1.my-vl3"]]);
    const v6 = await serve(records, `${[..."fd00000000000000000000000000000a"].reverse().join(".")}.ip6.arpa.`, "PTR");
    expect(ipsOf(v6)).to.deep.equal(["nsc-1.my-vl3"]);
    expect(rcodeOf(await serve(records, "2.10.254.169.in-addr.arpa", "PTR")), "not held: next").to.equal(Rcode.SERVFAIL);
  });

  it("the loop guard refuses a query that comes back while it is in flight", async () => {
    let inner: Promise<DnsMessage> | undefined;
    const query = buildQuery("x.my-vl3", "A");
    const chain = dnsChain(newNoLoopHandler(), {
      name: "echo",
      serve: async (req, next) => {
        inner ??= chain(req); // the same query arrives again before the first is answered
        return next(req);
      },
    });
    await chain({ query, signal: new AbortController().signal, log: silentLogger });
    expect(inner && rcodeOf(await inner)).to.equal(Rcode.REFUSED);
  });
});

describe("dns: member-name servers asking their peers", function () {
  this.timeout(20_000);
  const cleanup = new Cleanup();
  afterEach(() => cleanup.run());

  async function member(peers: () => DnsServerAddress[]): Promise<MemberDnsServer> {
    const s = createMemberDnsServer(new MemoryRecords(), { peers, timeoutMs: 2000 });
    await s.listen("127.0.0.1:0");
    cleanup.add(() => s.close());
    return s;
  }

  it("three endpoints, each a peer of the others: a member on one resolves through any; no loop, unknown is NXDOMAIN", async () => {
    const all: MemberDnsServer[] = [];
    const peersOf = (): DnsServerAddress[] => all.flatMap((s) => (s.address ? [s.address] : []));
    for (let i = 0; i < 3; i++) all.push(await member(peersOf));
    const [a, b, c] = all as [MemberDnsServer, MemberDnsServer, MemberDnsServer];
    a.records.set("nsc-a.vl3", ["169.254.20.1"]);
    c.records.set("nsc-c.vl3", ["169.254.20.3"]);
    const ask = (s: MemberDnsServer, name: string) =>
      exchangeUdp(s.address as DnsServerAddress, buildQuery(name, "A"), { timeoutMs: 5000 });
    expect(ipsOf(await ask(b, "nsc-a.vl3"))).to.deep.equal(["169.254.20.1"]);
    expect(ipsOf(await ask(a, "nsc-c.vl3"))).to.deep.equal(["169.254.20.3"]);
    const none = await ask(b, "nobody.vl3");
    expect(rcodeOf(none)).to.equal(Rcode.NXDOMAIN);
    expect(none.packet.flag_rd, "the client's RD flag comes back").to.equal(true);
    // b asked a and c once each (RD cleared); neither asked further: a peer question travels one hop.
    const asked = all.map((s) => Object.values(s.stats().answered).reduce((x, y) => x + y, 0));
    expect(asked).to.deep.equal([1 + 1 + 1, 3, 1 + 1 + 1]);
    // Removing a name is seen by the peers' next question.
    a.records.delete("nsc-a.vl3");
    expect(rcodeOf(await ask(c, "nsc-a.vl3"))).to.equal(Rcode.NXDOMAIN);
  });
});
