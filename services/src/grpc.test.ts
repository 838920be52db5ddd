import { BalancingPolicy, Protocol, ReconcileState } from "@nsm-ts/api/services";
import { MockClock } from "@nsm-ts/base/clock";
import { type Channel, createServer, dial, type NsmServer } from "@nsm-ts/base/grpc";
import { Code } from "@nsm-ts/base/status";
import { createMemoryResourceStore, createResourceManagers } from "@nsm-ts/resources";
import { expectStatus } from "@nsm-ts/testing/grpc";
import { expect } from "chai";
import { createResourceAllocator } from "./allocator.js";
import { followResolvedServices, type ResolvedServiceUpdate, servicesClient } from "./client.js";
import { registerServices } from "./grpc.js";
import { ServiceModel } from "./model.js";

describe("services gRPC API", () => {
  let server: NsmServer;
  let channel: Channel;
  let model: ServiceModel;
  const ac = new AbortController();

  beforeEach(async () => {
    const allocator = createResourceAllocator(createResourceManagers({ store: createMemoryResourceStore() }), {
      policies: { "round-robin": "169.254.200.0/24", "consistent-hash": "169.254.202.0/24" },
      instance: "169.254.210.0/24",
    });
    await allocator.init();
    model = new ServiceModel({ allocator, clock: new MockClock() });
    server = createServer();
    registerServices(server, model);
    channel = dial(await server.listen("tcp://127.0.0.1:0"));
  });
  afterEach(async () => {
    channel.close();
    await server.close({ graceMs: 0 });
  });
  after(() => ac.abort());

  it("serves CRUD with allocation, compare-and-set and field-named errors over the wire", async () => {
    const c = servicesClient(channel);
    const s = await c.services.createService({ name: "web", ports: [{ port: 80 }] });
    expect(s.source).to.equal("api");
    expect(s.ports[0]?.protocol).to.equal(Protocol.TCP);
    const f = await c.frontends.createFrontend({ service: "web", policy: BalancingPolicy.ROUND_ROBIN });
    expect(f.address).to.match(/^169\.254\.200\.\d+$/);
    const err = await expectStatus(c.frontends.createFrontend({ service: "web", policy: BalancingPolicy.CLOSEST }), Code.InvalidArgument);
    expect(err.message).to.contain("address");
    await expectStatus(
      c.frontends.createFrontend({ service: "x", policy: BalancingPolicy.CONSISTENT_HASH, address: "169.254.1.1" }),
      Code.InvalidArgument,
    );
    const b = await c.backends.createBackend({ service: "web", address: "169.254.1.1", node: "n1" });
    expect(b.instanceIp).to.match(/^169\.254\.210\.\d+$/);
    const bad = await expectStatus(c.backends.createBackend({ service: "web", address: "nope" }), Code.InvalidArgument);
    expect(bad.message).to.contain("address");
    await expectStatus(c.services.updateService({ name: "web", revision: "999" }), Code.Aborted);
    await expectStatus(c.services.getService({ service: "nope" }), Code.NotFound);
    expect((await c.backends.listBackends({ service: "web" })).items).to.have.length(1);
    const r = (await c.dataPlane.listResolvedServices({ node: "n1" })).items;
    expect(r.map((x) => x.name)).to.deep.equal(["web"]);
    expect(r[0]?.backends[0]).to.include({ address: "169.254.1.1", port: 80, source: "api" });
    // Deleting the frontend releases its ServiceIP: the next one gets the same address again.
    await c.frontends.deleteFrontend({ service: "web", policy: BalancingPolicy.ROUND_ROBIN });
    const again = await c.frontends.createFrontend({ service: "web", policy: BalancingPolicy.ROUND_ROBIN });
    expect(again.address).to.equal(f.address);
  });

  it("streams the resolved view with deletions and a synced marker, and records reconcile status", async () => {
    const c = servicesClient(channel);
    await c.services.createService({ name: "web", ports: [{ port: 80 }] });
    await c.backends.createBackend({ service: "web", address: "169.254.1.1" });
    const follow = new AbortController();
    const it = followResolvedServices(c.dataPlane, { node: "n1", signal: follow.signal })[Symbol.asyncIterator]();
    const next = async (): Promise<ResolvedServiceUpdate> => (await it.next()).value as ResolvedServiceUpdate;
    try {
      const first = await next();
      expect(first.kind).to.equal("upsert");
      expect((await next()).kind).to.equal("synced");
      await c.backends.createBackend({ service: "web", address: "169.254.1.2" });
      const up = await next();
      expect(up.kind === "upsert" && up.service.backends.map((b) => b.address)).to.deep.equal(["169.254.1.1", "169.254.1.2"]);
      const st = await c.dataPlane.reportReconcileStatus({
        node: "n1",
        service: "web",
        state: ReconcileState.RECONCILED,
        revision: up.kind === "upsert" ? up.service.revision : "0",
      });
      expect(st.updatedUnixMs).to.not.equal("0");
      expect((await c.dataPlane.listReconcileStatus({ service: "web" })).items.map((x) => x.state)).to.deep.equal([
        ReconcileState.RECONCILED,
      ]);
      await expectStatus(c.dataPlane.reportReconcileStatus({ node: "n1", service: "gone", state: ReconcileState.ERROR }), Code.NotFound);
      await expectStatus(c.dataPlane.reportReconcileStatus({ node: "n1", service: "web" }), Code.InvalidArgument);
      await c.services.deleteService({ service: "web" });
      const del = await next();
      expect(del).to.deep.include({ kind: "delete", name: "web" });
      expect((await c.dataPlane.listReconcileStatus({ service: "web" })).items, "orphan backends keep the statuses").to.have.length(1);
    } finally {
      follow.abort();
      await it.return?.(undefined);
    }
  });
});
