/**
 * DNS on the sandbox (upstream's vL3 DNS scenarios, one endpoint): an endpoint serving member names
 * (`vl3dns` + a member-name server on loopback) and clients whose `dnscontext` stores feed a forwarder each.
 * Ten clients resolve each other by `<client>.<service>.`; a name goes with its Close; a DNS server address that
 * arrives 200 ms after the first Request fails nothing and reaches the client with its refresh (the same
 * connection requested again).
 */
import { MockClock } from "@nsm-ts/base/clock";
import {
  buildQuery,
  createDnsServer,
  createMemberDnsServer,
  type DnsMessage,
  type DnsServer,
  type DnsServerAddress,
  dnsChain,
  exchangeUdp,
  formatServerAddress,
  MemoryRecords,
  newRouteHandler,
  Rcode,
  rcodeOf,
} from "@nsm-ts/sdk/dns";
import { dnscontext, ipam, type NsmClient } from "@nsm-ts/sdk/networkservice";
import { expect } from "chai";
import { Cleanup } from "../dns/index.js";
import { createSandbox, type Sandbox } from "./index.js";
import { leftovers, resourceSnapshot } from "./leak-check.js";

const SERVICE = "my-vl3";
const MIN = 60_000;
const ipsOf = (m: DnsMessage): string[] => (m.packet.answers ?? []).map((a) => String("data" in a ? a.data : ""));

describe("sandbox: DNS for the members of one endpoint", function () {
  this.timeout(60_000);
  let sb: Sandbox | undefined;
  let before: Map<string, number>;
  const cleanup = new Cleanup();

  beforeEach(async () => {
    await Promise.resolve(); // mocha arms the hook timer once this function has returned its promise
    before = resourceSnapshot();
  });
  afterEach(async () => {
    await sb?.close();
    sb = undefined;
    await cleanup.run();
    expect(await leftovers(before), "sockets, servers or timers left behind").to.deep.equal({});
  });

  /** The endpoint: member names in `records`, the member-name server's address from `dnsAt()`. */
  async function startEndpoint(s: Sandbox, dnsAt: () => string | undefined): Promise<MemoryRecords> {
    const records = new MemoryRecords();
    await s.addEndpoint(0, {
      name: "nse-vl3",
      services: [SERVICE],
      additional: [
        dnscontext.vl3dns.newServer(records, { dnsServerAddress: dnsAt }),
        ipam.point2pointipam.newServer(ipam.createAddressPool(["169.254.40.0/24"])),
      ],
    });
    return records;
  }

  async function memberServer(records: MemoryRecords): Promise<DnsServerAddress> {
    const server = createMemberDnsServer(records);
    const at = await server.listen("127.0.0.1:0");
    cleanup.add(() => server.close());
    return at;
  }

  /** A client of the sandbox with its dnscontext store and a forwarder over it. */
  async function dnsClient(s: Sandbox, name: string): Promise<{ nsc: NsmClient; store: dnscontext.DnsConfigStore; forwarder: DnsServer }> {
    const store = new dnscontext.DnsConfigStore();
    const nsc = s.addClient(0, { name, additional: [dnscontext.newClient(store)] });
    const forwarder = createDnsServer(dnsChain(newRouteHandler(() => store.configs(), { timeoutMs: 2000 })));
    await forwarder.listen("127.0.0.1:0");
    cleanup.add(() => forwarder.close());
    return { nsc, store, forwarder };
  }

  const resolve = (forwarder: DnsServer, name: string): Promise<DnsMessage> =>
    exchangeUdp(forwarder.address as DnsServerAddress, buildQuery(name, "A"), { timeoutMs: 5000 });

  it("ten clients get distinct addresses and resolve each other by name; a name is removed on Close", async () => {
    sb = await createSandbox({ nodes: 1 });
    let at: DnsServerAddress | undefined;
    const records = await startEndpoint(sb, () => (at ? formatServerAddress(at) : undefined));
    at = await memberServer(records);
    const clients = [];
    for (let i = 0; i < 10; i++) clients.push(await dnsClient(sb, `nsc-${i}`));
    const conns = await Promise.all(clients.map((c) => c.nsc.request({ connection: { networkService: SERVICE } })));
    const addrs = conns.map((c) => c.context?.ipContext?.srcIpAddrs[0]?.replace(/\/\d+$/, ""));
    expect(new Set(addrs).size, "distinct addresses").to.equal(10);
    for (const c of clients) {
      expect(c.store.configs()).to.deep.equal([{ dnsServerIps: [formatServerAddress(at)], searchDomains: [SERVICE] }]);
    }
    const first = clients[0]?.forwarder as DnsServer;
    for (let i = 0; i < 10; i++) expect(ipsOf(await resolve(first, `nsc-${i}.${SERVICE}.`)), `nsc-${i}`).to.deep.equal([addrs[i]]);

    const gone = clients[3];
    await gone?.nsc.close(conns[3] as (typeof conns)[number]);
    expect(gone?.store.configs(), "the closed client's store is empty").to.deep.equal([]);
    expect(rcodeOf(await resolve(first, `nsc-3.${SERVICE}.`))).to.equal(Rcode.NXDOMAIN);
    expect(ipsOf(await resolve(clients[9]?.forwarder as DnsServer, `nsc-4.${SERVICE}.`))).to.deep.equal([addrs[4]]);
    expect(records.names()).to.have.length(9);
  });

  it("a DNS server address arriving 200 ms late fails no Request and reaches the client with its refresh", async () => {
    const clock = new MockClock();
    sb = await createSandbox({ nodes: 1, clock, tokenLifetimeMs: 10 * MIN, registryExpirePeriodMs: 10 * MIN });
    let at: DnsServerAddress | undefined;
    const records = await startEndpoint(sb, () => (at ? formatServerAddress(at) : undefined));
    const member = await memberServer(records);
    clock.setTimer(200, () => {
      at = member;
    });
    const { nsc, store, forwarder } = await dnsClient(sb, "nsc-late");
    const conn = await nsc.request({ connection: { networkService: SERVICE } });
    expect(conn.context?.dnsContext?.configs, "no DNS config yet").to.deep.equal([]);
    expect(store.configs()).to.deep.equal([]);
    expect(rcodeOf(await resolve(forwarder, `nsc-late.${SERVICE}.`)), "nothing to route to yet").to.equal(Rcode.SERVFAIL);

    const changes: number[] = [];
    store.onChange((c) => changes.push(c.length));
    await clock.advance(200);
    expect(at, "the address is known at 200 ms").to.not.equal(undefined);
    // The refresh: the same connection requested again, as the refresh element does (here without waiting minutes
    // of mock time for its timer, which races the real gRPC calls under load).
    const refreshed = await nsc.request({ connection: conn });
    expect(refreshed.id).to.equal(conn.id);
    expect(changes, "one store change, with the config").to.deep.equal([1]);
    expect(store.configs()).to.deep.equal([{ dnsServerIps: [formatServerAddress(member)], searchDomains: [SERVICE] }]);
    const addr = refreshed.context?.ipContext?.srcIpAddrs[0]?.replace(/\/\d+$/, "");
    expect(ipsOf(await resolve(forwarder, `nsc-late.${SERVICE}.`))).to.deep.equal([addr]);
  });
});
