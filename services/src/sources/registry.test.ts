import { create } from "@bufbuild/protobuf";
import { type NetworkServiceEndpoint, NetworkServiceEndpointRegistry, NetworkServiceEndpointSchema } from "@nsm-ts/api/registry";
import { MockClock } from "@nsm-ts/base/clock";
import { createServer, dial } from "@nsm-ts/base/grpc";
import { createMemoryStore, type RegistryStore } from "@nsm-ts/sdk/registry";
import { expect } from "chai";
import { resolved, svc, waitResolved } from "../model.fixture.js";
import { ServiceModel } from "../model.js";
import { remoteFind, storeFind } from "./find.js";
import { backendsOf as nseBackends, parsePorts } from "./labels.js";
import { startRegistrySource } from "./registry.js";

const nse = (name: string, address: string, labels: Record<string, string> = {}, service = "web"): NetworkServiceEndpoint =>
  create(NetworkServiceEndpointSchema, {
    name,
    networkServiceNames: [service],
    url: "tcp://127.0.0.1:5003",
    networkServiceLabels: { [service]: { labels: { "nsmts.io/address": address, ...labels } } },
  });

const addresses = (m: ServiceModel, node = ""): string[] =>
  (resolved(m, "web", node)?.backends ?? []).map((b) => `${b.address}:${b.port}@${b.source}`).sort();

describe("services registry source", () => {
  let store: RegistryStore<NetworkServiceEndpoint>;
  const clock = new MockClock();
  afterEach(() => store.close());

  it("turns registrations into backends and removes them on unregister, expiry and DOWN within 1 s", async () => {
    store = createMemoryStore("nse", { clock });
    const model = new ServiceModel({ clock });
    const src = startRegistrySource({ model, source: "registry", find: storeFind(store), clock });
    try {
      await store.put(
        nse("web-1", "169.254.10.1", { "nsmts.io/ports": "http=8080", nodeName: "n1", "topology.kubernetes.io/zone": "z1", app: "web" }),
      );
      const up = await waitResolved(model, "web", (e) => (e.service?.backends.length ?? 0) === 1);
      expect(up.service?.ports.map((p) => `${p.name}:${p.port}`)).to.deep.equal(["http:8080"]);
      expect(up.service?.backends[0]).to.include({
        address: "169.254.10.1",
        port: 8080,
        node: "n1",
        zone: "z1",
        source: "registry",
        name: "web-1",
      });
      expect(up.service?.backends[0]?.labels).to.deep.equal({ nodeName: "n1", "topology.kubernetes.io/zone": "z1", app: "web" });

      await store.put(nse("web-2", "169.254.10.2", { "nsmts.io/ports": "http=8080" }), { expiresAtMs: clock.now() + 5000 });
      await waitResolved(model, "web", (e) => (e.service?.backends.length ?? 0) === 2);

      // Unregister: measured on the real clock from the delete to the resolved event.
      const t0 = performance.now();
      const gone = waitResolved(model, "web", (e) => e.service?.backends.every((b) => b.name !== "web-1") ?? false);
      await store.delete("web-1");
      await gone;
      expect(performance.now() - t0).to.be.below(1000);

      // Expiry (mock clock): the store reports the deletion, the backend goes.
      const expired = waitResolved(model, "web", (e) => e.deleted || (e.service?.backends.length ?? 0) === 0);
      await clock.advance(5000);
      await expired;
      expect(resolved(model, "web"), "no NSE describes the service any more").to.equal(undefined);

      // DOWN: the backend goes until the NSE registers again.
      await store.put(nse("web-3", "169.254.10.3"));
      await waitResolved(model, "web", (e) => (e.service?.backends.length ?? 0) === 1);
      const down = waitResolved(model, "web", (e) => e.deleted);
      await src.markDown("web-3");
      await down;
      await store.put(nse("web-3", "169.254.10.3"));
      await waitResolved(model, "web", (e) => (e.service?.backends.length ?? 0) === 1);
    } finally {
      await src.stop();
    }
  });

  it("keeps malformed registrations out and says why", () => {
    expect(() => nseBackends(nse("x", "not-an-ip"), "registry")).to.throw(/network_service_labels\[web\]\.nsmts\.io\/address/);
    expect(() => parsePorts("http=80,dns=x/udp")).to.throw(/nsmts\.io\/ports\[1\]/);
    expect(parsePorts("http=8080, 53/udp").map((p) => `${p.name}:${p.port}/${p.protocol}`)).to.deep.equal(["http:8080/1", ":53/2"]);
    expect(nseBackends(create(NetworkServiceEndpointSchema, { name: "y", networkServiceNames: ["web"] }), "registry")).to.deep.equal([]);
  });

  it("follows a remote registry over gRPC as a lower-priority source", async () => {
    store = createMemoryStore("nse", { clock });
    const remote = createMemoryStore("nse", { clock });
    const server = createServer();
    server.addService(NetworkServiceEndpointRegistry, {
      register: async (r) => r,
      unregister: async () => ({}),
      find: async function* (q, ctx) {
        for await (const ev of remote.find(q.networkServiceEndpoint ?? create(NetworkServiceEndpointSchema), {
          watch: q.watch,
          signal: ctx.signal,
        })) {
          yield { networkServiceEndpoint: ev.entry, deleted: ev.deleted };
        }
      },
    });
    const channel = dial(await server.listen("tcp://127.0.0.1:0"));
    const model = new ServiceModel({ clock });
    const local = startRegistrySource({ model, source: "registry", find: storeFind(store), clock });
    const far = startRegistrySource({ model, source: "remote", find: remoteFind(channel), clock });
    try {
      await remote.put(nse("far-1", "169.254.20.1", { "nsmts.io/ports": "9090", "topology.kubernetes.io/zone": "far" }));
      await waitResolved(model, "web", (e) => (e.service?.backends.length ?? 0) === 1);
      expect(addresses(model)).to.deep.equal(["169.254.20.1:9090@remote"]);
      // The local registry describes the service and the same instance: its fields win.
      await store.put(nse("near-1", "169.254.20.1", { "nsmts.io/ports": "8080", nodeName: "n1" }));
      await waitResolved(model, "web", (e) => e.service?.backends[0]?.source === "registry");
      expect(addresses(model)).to.deep.equal(["169.254.20.1:8080@registry"]);
      expect(resolved(model, "web")?.backends[0]).to.include({ zone: "far", node: "n1" });
      // The API outranks both.
      await model.writeService(svc({ name: "web", ports: [{ port: 7070 }] }), "put");
      expect(resolved(model, "web")?.ports.map((p) => p.port)).to.deep.equal([7070]);
      // The local registration leaves: the remote description applies again.
      await model.deleteService(create((await import("@nsm-ts/api/services")).ObjectRefSchema, { service: "web" }));
      await store.delete("near-1");
      await waitResolved(model, "web", (e) => e.service?.backends[0]?.source === "remote");
      expect(addresses(model)).to.deep.equal(["169.254.20.1:9090@remote"]);
      // The remote registry goes away: its rows are dropped.
      const dropped = waitResolved(model, "web", (e) => e.deleted);
      await server.close({ graceMs: 0 });
      await dropped;
    } finally {
      await far.stop();
      await local.stop();
      channel.close();
      await server.close({ graceMs: 0 });
      await remote.close();
    }
  });
});
