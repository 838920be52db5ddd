import { create } from "@bufbuild/protobuf";
import { type NetworkServiceEndpoint, NetworkServiceEndpointSchema } from "@nsm-ts/api/registry";
import { CallContext } from "@nsm-ts/base/context";
import { Code, isStatusError } from "@nsm-ts/base/status";
import { createDomainsDns, type DomainsDns } from "@nsm-ts/testing/dns";
import { memNseRegistry } from "@nsm-ts/testing/registry";
import { expect } from "chai";
import { registryChain, registryHandler } from "../../core/index.js";
import type { NseHandler, RegistryElement } from "../../core/types.js";
import { urlKey } from "../connect/index.js";
import * as interdomainbypass from "../interdomainbypass/index.js";
import * as swapip from "../swapip/index.js";
import { createDnsResolver, domainOf, isInterdomain, joinDomain, newServer, resolveDomain, targetOf } from "./index.js";

const outcome = (p: Promise<unknown>): Promise<unknown> =>
  p.then(
    () => undefined,
    (e: unknown) => e,
  );

async function all(h: NseHandler): Promise<NetworkServiceEndpoint[]> {
  const out: NetworkServiceEndpoint[] = [];
  for await (const r of h.find(CallContext.create(), { template: create(NetworkServiceEndpointSchema, {}), watch: false }))
    out.push(r.entry);
  return out;
}

describe("interdomain names", () => {
  it("splits at the first @ and joins back", () => {
    expect(isInterdomain("svc@b.example")).to.equal(true);
    expect(isInterdomain("svc")).to.equal(false);
    expect(domainOf("svc@b.example")).to.equal("b.example");
    expect(targetOf("svc@b.example")).to.equal("svc");
    expect(joinDomain("svc", "b.example")).to.equal("svc@b.example");
    expect(joinDomain("", "b.example")).to.equal("");
  });
});

describe("dnsresolve", () => {
  let dns: DomainsDns;
  beforeEach(async () => {
    dns = await createDomainsDns();
  });
  afterEach(() => dns.close());
  const ctx = (ms = 3000) => CallContext.create().withDeadline(Date.now() + ms);

  it("resolves registry.nsm-system.<domain> with SRV (port) and A (address); AAAA gets brackets", async () => {
    dns.set("registry.nsm-system.b.example", "tcp://127.0.0.1:5002");
    dns.set("registry.nsm-system.c.example", "tcp://[fd00::7]:5003");
    const r = createDnsResolver([dns.at]);
    expect(await resolveDomain(ctx(), r, "registry.nsm-system", "b.example")).to.equal("tcp://127.0.0.1:5002");
    expect(await resolveDomain(ctx(), r, "registry.nsm-system", "c.example")).to.equal("tcp://[fd00::7]:5003");
  });

  it("an unknown domain is NotFound naming it; a DNS server that never answers is Unavailable within the deadline", async () => {
    const r = createDnsResolver([dns.at], { queryTimeoutMs: 5000 });
    const err = await outcome(resolveDomain(ctx(), r, "registry.nsm-system", "nowhere.example"));
    expect(isStatusError(err, Code.NotFound)).to.equal(true);
    expect((err as Error).message).to.contain('domain "nowhere.example"');
    dns.hang("registry.nsm-system.slow.example");
    const t0 = Date.now();
    const slow = await outcome(resolveDomain(ctx(300), r, "registry.nsm-system", "slow.example"));
    expect(isStatusError(slow, Code.Unavailable), String(slow)).to.equal(true);
    expect(Date.now() - t0).to.be.below(1500);
  });

  it("strips @domain towards the remote registry, re-appends it and puts the domain's nsmgr-proxy URL on results", async () => {
    dns.set("registry.nsm-system.b.example", "tcp://127.0.0.1:5002");
    dns.set("nsmgr-proxy.nsm-system.b.example", "tcp://127.0.0.1:5004");
    const remote = memNseRegistry();
    const seenUrls: string[] = [];
    const capture: RegistryElement<never> = {
      name: "capture",
      register: (c, e, n) => {
        seenUrls.push(urlKey.get(c) ?? "");
        return n.register(c, e);
      },
      find: (c, q, n) => {
        seenUrls.push(urlKey.get(c) ?? "");
        return n.find(c, q);
      },
      unregister: (c, e, n) => n.unregister(c, e),
    };
    const h = registryHandler(registryChain<NetworkServiceEndpoint>(newServer(createDnsResolver([dns.at])), capture as never), remote);
    const reg = await h.register(
      ctx(),
      create(NetworkServiceEndpointSchema, {
        name: "nse-1@b.example",
        url: "tcp://127.0.0.1:6000",
        networkServiceNames: ["svc@b.example"],
        networkServiceLabels: { "svc@b.example": { labels: { app: "x" } } },
      }),
    );
    expect(reg.name).to.equal("nse-1@b.example");
    expect(reg.networkServiceNames).to.deep.equal(["svc@b.example"]);
    const stored = (await all(remote))[0];
    expect(stored?.name).to.equal("nse-1");
    expect(Object.keys(stored?.networkServiceLabels ?? {})).to.deep.equal(["svc"]);
    const found = [];
    for await (const r of h.find(ctx(), {
      template: create(NetworkServiceEndpointSchema, { networkServiceNames: ["svc@b.example"] }),
      watch: false,
    }))
      found.push(r.entry);
    expect(found.map((e) => [e.name, e.url])).to.deep.equal([["nse-1@b.example", "tcp://127.0.0.1:5004"]]);
    expect(seenUrls).to.deep.equal(["tcp://127.0.0.1:5002", "tcp://127.0.0.1:5002"]);
    const bad = await outcome(h.register(ctx(), create(NetworkServiceEndpointSchema, { name: "local", networkServiceNames: ["svc"] })));
    expect(isStatusError(bad, Code.InvalidArgument)).to.equal(true);
  });
});

describe("interdomainbypass (registry) and swapip", () => {
  const ctx = () => CallContext.create();
  it("publishes the proxy URL, remembers real URLs (registration wins over Find), forgets on unregister", async () => {
    const upstream = memNseRegistry();
    const urls = new interdomainbypass.InterdomainUrls();
    const h = registryHandler(interdomainbypass.newServer<NetworkServiceEndpoint>(urls, "tcp://127.0.0.1:7000"), upstream);
    const out = await h.register(ctx(), create(NetworkServiceEndpointSchema, { name: "a@f", url: "tcp://127.0.0.1:7100" }));
    expect(out.url).to.equal("tcp://127.0.0.1:7100");
    expect((await all(upstream))[0]?.url).to.equal("tcp://127.0.0.1:7000");
    await upstream.register(ctx(), create(NetworkServiceEndpointSchema, { name: "b@g", url: "tcp://127.0.0.1:7200" }));
    const found = [];
    for await (const r of h.find(ctx(), { template: create(NetworkServiceEndpointSchema, {}), watch: false })) found.push(r.entry.url);
    expect(found).to.deep.equal(["tcp://127.0.0.1:7000", "tcp://127.0.0.1:7000"]);
    expect(urls.get("a@f")).to.equal("tcp://127.0.0.1:7100");
    expect(urls.get("b@g")).to.equal("tcp://127.0.0.1:7200");
    await h.unregister(ctx(), create(NetworkServiceEndpointSchema, { name: "a@f", url: "tcp://127.0.0.1:7100" }));
    expect(urls.get("a@f")).to.equal(undefined);
  });

  it("swapip rewrites mapped hosts of tcp URLs and leaves everything else", () => {
    const map = { "10.0.0.1": "203.0.113.5", "fd00::1": "fd00::2" };
    expect(swapip.swapUrl("tcp://10.0.0.1:5001", map)).to.equal("tcp://203.0.113.5:5001");
    expect(swapip.swapUrl("tcp://[fd00::1]:5001", map)).to.equal("tcp://[fd00::2]:5001");
    expect(swapip.swapUrl("tcp://10.0.0.9:5001", map)).to.equal("tcp://10.0.0.9:5001");
    expect(swapip.swapUrl("unix:///x.sock", map)).to.equal("unix:///x.sock");
    expect(swapip.swapUrl("not a url", map)).to.equal("not a url");
  });
});
