/**
 * Interdomain scenarios on several sandboxes sharing one DNS server, after upstream's nsmgr-proxy suite: a client
 * of one domain reaches `svc@other-domain` through both domains' nsmgr-proxies (8 path segments), floating
 * registries, an endpoint registered both in its domain and in a floating registry, and the failure cases (unknown
 * domain, DNS that does not answer, a loop of proxies).
 */
import { create } from "@bufbuild/protobuf";
import { type Connection, type NetworkServiceRequest, NetworkServiceRequestSchema } from "@nsm-ts/api/networkservice";
import { NetworkServiceEndpointSchema, NetworkServiceSchema } from "@nsm-ts/api/registry";
import { CallContext } from "@nsm-ts/base/context";
import { Code, isStatusError } from "@nsm-ts/base/status";
import type { NetworkServiceElement, NsmClient } from "@nsm-ts/sdk/networkservice";
import { createFederatedSource, domainFind, FEDERATED_PRIORITY } from "@nsm-ts/sdk/registry";
import { expect } from "chai";
import { createDomainsDns, type DomainsDns } from "../dns/index.js";
import { newCounter } from "../elements/count/index.js";
import { createSandbox, type Sandbox } from "./index.js";
import { leftovers, resourceSnapshot } from "./leak-check.js";

const request = (service: string): NetworkServiceRequest =>
  create(NetworkServiceRequestSchema, { connection: { networkService: service } });

/** Records the network service each Request carries when it reaches the endpoint. */
function seenServices(into: string[]): NetworkServiceElement {
  return {
    name: "seen-services",
    request(ctx, req, next) {
      into.push(req.connection?.networkService ?? "");
      return next.request(ctx, req);
    },
    close: (ctx, conn, next) => next.close(ctx, conn),
  };
}

/**
 * Requests `service` across domains and refreshes the connection: both times 8 path segments ending at
 * `finalEndpoint` (and whatever `check` asks of the first answer); then closes it.
 */
async function roundTrip(nsc: NsmClient, service: string, finalEndpoint: string, check?: (conn: Connection) => void): Promise<void> {
  const conn = await nsc.request(request(service));
  expect(conn.path?.pathSegments).to.have.length(8);
  expect(conn.path?.pathSegments[7]?.name).to.equal(finalEndpoint);
  check?.(conn);
  const again = await nsc.request({ connection: conn });
  expect(again.path?.pathSegments).to.have.length(8);
  expect(again.path?.pathSegments[7]?.name).to.equal(finalEndpoint);
  await nsc.close(again);
}

async function findCount(h: Sandbox["registry"]["nse"], name: string): Promise<number> {
  let n = 0;
  for await (const _ of h.find(ctx(), { template: create(NetworkServiceEndpointSchema, { name }), watch: false })) n++;
  return n;
}

describe("interdomain scenarios (nsmgr-proxy suite)", function () {
  this.timeout(30_000);
  let dns: DomainsDns;
  let sandboxes: Sandbox[] = [];
  let before: Map<string, number>;

  beforeEach(async () => {
    await Promise.resolve();
    before = resourceSnapshot();
    dns = await createDomainsDns();
  });
  afterEach(async () => {
    for (const sb of sandboxes.reverse()) await sb.close();
    sandboxes = [];
    await dns.close();
    expect(await leftovers(before), "sockets, servers or timers left behind").to.deep.equal({});
  });

  const domain = async (name: string, nodes = 1, floating = false): Promise<Sandbox> => {
    const sb = await createSandbox({ nodes, domain: { name, dns, floating } });
    sandboxes.push(sb);
    return sb;
  };

  it("InterdomainUseCase: request/refresh/close of svc@cluster2 from cluster1, 8 path segments", async () => {
    const c1 = await domain("cluster1");
    const c2 = await domain("cluster2");
    const seen: string[] = [];
    const counter = newCounter("nse");
    await c2.addEndpoint(0, { name: "final-endpoint", services: ["my-service-interdomain"], additional: [seenServices(seen), counter] });
    const nsc = c1.addClient(0);
    const conn = await nsc.request(request("my-service-interdomain@cluster2"));
    expect(conn.path?.pathSegments.map((s) => s.name)).to.deep.equal([
      "nsc-0",
      "nsmgr-0",
      "forwarder-0",
      "nsmgr-proxy.cluster1",
      "nsmgr-proxy.cluster2",
      "nsmgr-0",
      "forwarder-0",
      "final-endpoint",
    ]);
    expect(conn.networkService).to.equal("my-service-interdomain@cluster2");
    expect(conn.networkServiceEndpointName).to.equal("final-endpoint@cluster2");
    const again = await nsc.request({ connection: conn });
    expect(again.path?.pathSegments).to.have.length(8);
    expect(again.id).to.equal(conn.id);
    expect(counter.uniqueRequests).to.equal(1);
    expect(counter.requests).to.equal(2);
    // The endpoint never sees the domain: it serves its own service name.
    expect(seen).to.deep.equal(["my-service-interdomain", "my-service-interdomain"]);
    await nsc.close(again);
    expect(counter.closes).to.equal(1);
  });

  it("heal across domains: the endpoint in cluster2 dies and restarts, the client's connection comes back", async () => {
    const c1 = await domain("cluster1");
    const c2 = await domain("cluster2");
    const counter = newCounter("nse");
    const nse = await c2.addEndpoint(0, { name: "final-endpoint", services: ["svc"], additional: [counter] });
    let healed: (() => void) | undefined;
    const watch: NetworkServiceElement = {
      name: "healed",
      async request(ctx, req, next) {
        const out = await next.request(ctx, req);
        healed?.();
        return out;
      },
      close: (ctx, conn, next) => next.close(ctx, conn),
    };
    const nsc = c1.addClient(0, { additional: [watch] });
    const conn = await nsc.request(request("svc@cluster2"));
    expect(conn.path?.pathSegments).to.have.length(8);
    const back = new Promise<void>((resolve) => {
      healed = resolve;
    });
    await nse.restart();
    await back;
    expect(counter.requests, "the restarted endpoint was asked again").to.be.at.least(2);
    await nsc.close(conn);
  });

  it("Interdomain_TwoNodesNSEs: two services of a two-node cluster, each 8 segments and refreshable", async () => {
    const c1 = await domain("cluster1");
    const c2 = await domain("cluster2", 2);
    await c2.addEndpoint(0, { name: "final-endpoint-1", services: ["my-service-interdomain-1"] });
    await c2.addEndpoint(1, { name: "final-endpoint-2", services: ["my-service-interdomain-2"] });
    const nsc = c1.addClient(0);
    for (const i of [1, 2]) await roundTrip(nsc, `my-service-interdomain-${i}@cluster2`, `final-endpoint-${i}`);
  });

  it("FloatingInterdomainUseCase: an endpoint registered as nse@floating.domain is reached from another cluster", async () => {
    const c1 = await domain("cluster1");
    const c2 = await domain("cluster2");
    const floating = await domain("floating.domain", 0, true);
    await c2.registry.ns.register(
      ctx(),
      create(NetworkServiceSchema, { name: "my-service-interdomain@floating.domain", payload: "ETHERNET" }),
    );
    await c2.addEndpoint(0, { name: "final-endpoint@floating.domain", services: ["my-service-interdomain"] });
    expect(await findCount(floating.registry.nse, "final-endpoint")).to.equal(1);
    const nsc = c1.addClient(0);
    await roundTrip(nsc, "my-service-interdomain@floating.domain", "final-endpoint@floating.domain");
  });

  it("NSEMovedFromInterdomainToFloating: Find counts 1/0/1, then both names reach their endpoint", async () => {
    const c1 = await domain("cluster1");
    const c2 = await domain("cluster2");
    const floating = await domain("floating.domain", 0, true);
    await c2.registry.ns.register(
      ctx(),
      create(NetworkServiceSchema, { name: "my-service-interdomain@floating.domain", payload: "ETHERNET" }),
    );
    await c2.addEndpoint(0, { name: "final-endpoint", services: ["my-service-interdomain"] });
    await c2.addEndpoint(0, { name: "final-endpoint@floating.domain", services: ["my-service-interdomain"] });
    expect(await findCount(c2.registry.nse, "final-endpoint")).to.equal(1);
    expect(await findCount(c1.registry.nse, "final-endpoint")).to.equal(0);
    expect(await findCount(floating.registry.nse, "final-endpoint")).to.equal(1);
    const nsc = c1.addClient(0);
    const finalNse: Record<string, string> = {
      "my-service-interdomain@cluster2": "final-endpoint",
      "my-service-interdomain@floating.domain": "final-endpoint@floating.domain",
    };
    for (const [service, nse] of Object.entries(finalNse)) await roundTrip(nsc, service, nse);
  });

  it("FloatingInterdomain_FourClusters: endpoints of two clusters in one floating registry, reached from a third", async () => {
    const c1 = await domain("cluster1");
    const c2 = await domain("cluster2");
    const c3 = await domain("cluster3");
    await domain("floating.domain", 0, true);
    for (const [c, i] of [
      [c2, 1],
      [c3, 2],
    ] as const) {
      await c.registry.ns.register(
        ctx(),
        create(NetworkServiceSchema, { name: `my-service-interdomain-${i}@floating.domain`, payload: "ETHERNET" }),
      );
      await c.addEndpoint(0, { name: `final-endpoint-${i}@floating.domain`, services: [`my-service-interdomain-${i}`] });
    }
    const nsc = c1.addClient(0);
    for (const i of [1, 2]) {
      await roundTrip(nsc, `my-service-interdomain-${i}@floating.domain`, `final-endpoint-${i}@floating.domain`, (conn) =>
        expect(conn.path?.pathSegments[4]?.name).to.equal(`nsmgr-proxy.cluster${i + 1}`),
      );
    }
  });

  it("Interdomain_PassThroughUsecase: 5 clusters, each endpoint passing to the previous cluster, 8×4+4 path segments", async () => {
    const n = 5;
    const clusters: Sandbox[] = [];
    const counter = newCounter("endpoint-0");
    for (let i = 0; i < n; i++) {
      const c = await domain(`cluster${i}`);
      clusters.push(c);
      const additional = i === 0 ? [counter] : c.passthrough(0, `endpoint-${i}`, `my-service-remote-${i - 1}@cluster${i - 1}`);
      await c.addEndpoint(0, { name: `endpoint-${i}`, services: [`my-service-remote-${i}`], additional });
    }
    const nsc = (clusters[n - 1] as Sandbox).addClient(0);
    const conn = await nsc.request(request(`my-service-remote-${n - 1}`));
    expect(conn.path?.pathSegments).to.have.length(8 * (n - 1) + 4);
    expect(conn.path?.pathSegments.at(-1)?.name).to.equal("endpoint-0");
    expect(counter.requests).to.equal(1);
    await nsc.close(conn);
    expect(counter.closes).to.equal(1);
  });

  it("floating NS registration: ns@floating.domain is stored in the floating registry under its own name", async () => {
    const c2 = await domain("cluster2");
    const floating = await domain("floating.domain", 0, true);
    const out = await c2.registry.ns.register(ctx(), create(NetworkServiceSchema, { name: "ns-1@floating.domain", payload: "IP" }));
    expect(out.name).to.equal("ns-1@floating.domain");
    const names: string[] = [];
    const c = ctx();
    for await (const r of floating.registry.ns.find(c, { template: create(NetworkServiceSchema, { name: "ns-1" }), watch: false }))
      names.push(r.entry.name);
    expect(names).to.deep.equal(["ns-1"]);
    await c2.registry.ns.unregister(ctx(), create(NetworkServiceSchema, { name: "ns-1@floating.domain" }));
  });

  it("registry: x@domain2 Find goes through the proxy; the local domain's names round-trip unchanged", async () => {
    const c1 = await domain("domain1");
    const c2 = await domain("domain2");
    await c2.addEndpoint(0, { name: "x", services: ["svc"] });
    await c1.addEndpoint(0, { name: "x", services: ["svc"] });
    const found: { name: string; url: string }[] = [];
    const c = ctx();
    for await (const r of c1.registry.nse.find(c, { template: create(NetworkServiceEndpointSchema, { name: "x@domain2" }), watch: false }))
      found.push({ name: r.entry.name, url: r.entry.url });
    // The remote endpoint comes back under its interdomain name, at this domain's nsmgr-proxy.
    expect(found).to.deep.equal([{ name: "x@domain2", url: c1.edge?.nsmgrProxy.url }]);
    expect(await findCount(c1.registry.nse, "x")).to.equal(1);
    expect(await findCount(c2.registry.nse, "x")).to.equal(1);
  });

  it("federated service: another domain's backends arrive as a lower-priority source, and leave", async () => {
    const c1 = await domain("cluster1");
    const c2 = await domain("cluster2");
    const nse = await c2.addEndpoint(0, { name: "backend-b", services: ["web"] });
    const source = createFederatedSource(c1.registry.nse, "cluster2");
    const lifetime = new AbortController();
    const c = CallContext.create({ signal: lifetime.signal });
    const events: { name: string; domain: string; priority: number; deleted: boolean; url: string }[] = [];
    for await (const ev of source.watch(c, "web")) {
      events.push({ name: ev.name, domain: ev.domain, priority: ev.priority, deleted: ev.deleted, url: ev.endpoint.url });
      if (events.length === 1) await nse.unregister();
      if (ev.deleted) break;
    }
    lifetime.abort();
    expect(events[0]).to.deep.equal({
      name: "backend-b",
      domain: "cluster2",
      priority: FEDERATED_PRIORITY,
      deleted: false,
      url: c1.edge?.nsmgrProxy.url,
    });
    expect(events.at(-1)).to.include({ name: "backend-b", deleted: true });
    expect(FEDERATED_PRIORITY).to.be.greaterThan(0);
  });

  it("domainFind: every endpoint of another domain, then its changes (the service model's remote source)", async () => {
    const c1 = await domain("cluster1");
    const c2 = await domain("cluster2");
    await c2.addEndpoint(0, { name: "b-1", services: ["web"] });
    const find = domainFind(c1.registry.nse, "cluster2", (signal) => CallContext.create({ signal }));
    const listed: string[] = [];
    for await (const ev of find(new AbortController().signal, false)) listed.push(ev.entry.name);
    // The other domain's own forwarder is an endpoint there too.
    expect(listed).to.include.members(["b-1@cluster2"]);
    expect(listed.every((n) => n.endsWith("@cluster2"))).to.equal(true);
    const lifetime = new AbortController();
    const seen: string[] = [];
    for await (const ev of find(lifetime.signal, true)) {
      seen.push(`${ev.deleted ? "-" : "+"}${ev.entry.name}`);
      if (ev.entry.name === "b-1@cluster2" && !ev.deleted) await c2.addEndpoint(0, { name: "b-2", services: ["web"] });
      if (ev.entry.name === "b-2@cluster2") break;
    }
    lifetime.abort();
    expect(seen).to.include.members(["+b-1@cluster2", "+b-2@cluster2"]);
  });

  it("unknown domain: NotFound naming it", async () => {
    const c1 = await domain("cluster1");
    const nsc = c1.addClient(0, { retry: false, heal: false, refresh: false });
    const err = await nsc.request(request("svc@nowhere.example"), { timeoutMs: 5000 }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(isStatusError(err, Code.NotFound), String(err)).to.equal(true);
    expect(String((err as Error).message)).to.contain("nowhere.example");
  });

  it("DNS timeout: Unavailable within the Request's deadline", async () => {
    const c1 = await domain("cluster1");
    dns.hang("registry.nsm-system.slow.example");
    const nsc = c1.addClient(0, { retry: false, heal: false, refresh: false });
    const t0 = Date.now();
    const err = await nsc.request(request("svc@slow.example"), { timeoutMs: 4000 }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(Date.now() - t0).to.be.below(4500);
    expect(isStatusError(err, Code.Unavailable), String(err)).to.equal(true);
  });

  it("a loop of proxies is detected and refused", async () => {
    const c1 = await domain("cluster1");
    const c2 = await domain("cluster2");
    await c2.addEndpoint(0, { name: "final-endpoint", services: ["svc"] });
    // cluster2's nsmgr-proxy published at cluster1's own proxy: every hop would go back to cluster1's proxy.
    dns.set("nsmgr-proxy.nsm-system.cluster2", c1.edge?.nsmgrProxy.url ?? "");
    const nsc = c1.addClient(0, { retry: false, heal: false, refresh: false });
    const err = await nsc.request(request("svc@cluster2"), { timeoutMs: 5000 }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(String(err)).to.contain("loop", String(err));
  });
});

function ctx(): CallContext {
  return CallContext.create().withDeadline(Date.now() + 5000);
}
