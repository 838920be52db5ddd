/**
 * The example endpoint in a sandbox mesh (registry + two nodes): a client on the other node requests the
 * service and gets addresses from the endpoint's prefix and the endpoint's DNS config, through every hop.
 */

import { createSandbox, leftovers, resourceSnapshot, type Sandbox } from "@nsm-ts/testing/sandbox";
import { expect } from "chai";
import { dnsEndpoint } from "./dns-endpoint.js";
import { serve } from "./serve.js";

describe("examples: dnsEndpoint", () => {
  let before: Map<string, number>;
  let sb: Sandbox;
  let stop: (() => Promise<void>) | undefined;
  let ep: ReturnType<typeof dnsEndpoint>;

  beforeEach(async () => {
    await Promise.resolve(); // mocha arms this hook's own timer once the function has returned its promise
    before = resourceSnapshot();
    sb = await createSandbox({ nodes: 2 });
    ep = dnsEndpoint({
      name: "nse-dns",
      tokenGenerator: sb.tokenGenerator("nse-dns"),
      cidrs: ["169.254.10.0/24"],
      dns: { servers: ["198.51.100.53"], searchDomains: ["example.test"] },
      insecure: true,
    });
    const node0 = sb.nodes[0];
    if (!node0) throw new Error("sandbox without node 0");
    stop = await serve({
      endpoint: ep,
      service: "dns-ns",
      listenOn: "tcp://127.0.0.1:0",
      nsmgrUrl: node0.nsmgr.url,
      tokenGenerator: sb.tokenGenerator("nse-dns"),
    });
  });

  afterEach(async () => {
    await stop?.();
    stop = undefined;
    await sb.close();
    expect(await leftovers(before), "sockets, servers or timers left behind").to.deep.equal({});
  });

  it("hands a remote client point-to-point addresses and the DNS config", async () => {
    const nsc = sb.addClient(1);
    const conn = await nsc.request({ connection: { networkService: "dns-ns" } });
    expect(conn.networkServiceEndpointName).to.equal("nse-dns");
    expect(conn.path?.pathSegments.map((s) => s.name).at(-1)).to.equal("nse-dns");
    expect(conn.path?.pathSegments).to.have.length(6); // nsc, nsmgr, forwarder, nsmgr, forwarder, nse
    const ip = conn.context?.ipContext;
    expect(ip?.srcIpAddrs).to.have.length(1);
    expect(ip?.dstIpAddrs).to.have.length(1);
    for (const a of [...(ip?.srcIpAddrs ?? []), ...(ip?.dstIpAddrs ?? [])]) expect(a).to.match(/^169\.254\.10\.\d+\/32$/);
    expect(ip?.srcIpAddrs[0]).to.not.equal(ip?.dstIpAddrs[0]);
    const dns = conn.context?.dnsContext?.configs;
    expect(dns?.map((c) => ({ servers: c.dnsServerIps, domains: c.searchDomains }))).to.deep.equal([
      { servers: ["198.51.100.53"], domains: ["example.test"] },
    ]);
    await nsc.close(conn);
  });

  it("gives two clients different addresses and takes them back on Close", async () => {
    const a = sb.addClient(0);
    const b = sb.addClient(1);
    const ca = await a.request({ connection: { networkService: "dns-ns" } });
    const cb = await b.request({ connection: { networkService: "dns-ns" } });
    const addrs = (c: typeof ca): string[] => [...(c.context?.ipContext?.srcIpAddrs ?? []), ...(c.context?.ipContext?.dstIpAddrs ?? [])];
    expect(addrs(ca)).to.have.length(2);
    expect(addrs(ca).filter((x) => addrs(cb).includes(x))).to.deep.equal([]);
    expect(ep.monitor.connections()).to.have.length(2);
    await a.close(ca);
    expect(ep.monitor.connections().map((x) => x.id)).to.deep.equal([cb.path?.pathSegments.at(-1)?.id]);
    // The freed pair goes back to the pool, and the pool hands out the lowest free pair first.
    const c = sb.addClient(0);
    const cc = await c.request({ connection: { networkService: "dns-ns" } });
    expect(addrs(cc)).to.deep.equal(addrs(ca));
    await b.close(cb);
    await c.close(cc);
  });
});
