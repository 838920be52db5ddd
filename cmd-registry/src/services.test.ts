import { create } from "@bufbuild/protobuf";
import { NetworkServiceEndpointSchema } from "@nsm-ts/api/registry";
import { BalancingPolicy, type ResolvedServiceEvent } from "@nsm-ts/api/services";
import { createServer, dial } from "@nsm-ts/base/grpc";
import { silentLogger } from "@nsm-ts/base/log";
import { createMemoryResourceStore, createResourceManagers } from "@nsm-ts/resources";
import { createMemoryStore, type NseHandler } from "@nsm-ts/sdk/registry";
import { servicesClient } from "@nsm-ts/services";
import { expect } from "chai";
import { config } from "./config.js";
import { startServices } from "./services.js";

/** `startServices` on a server listening on loopback, a channel to it, and the abort signal of the case's watches. */
async function serve(cfg: ReturnType<typeof config.parse>, deps: Pick<Parameters<typeof startServices>[2], "nseStore" | "registry">) {
  const server = createServer();
  const services = await startServices(server, cfg, {
    managers: createResourceManagers({ store: createMemoryResourceStore() }),
    log: silentLogger,
    dial: (url) => dial(url),
    ...deps,
  });
  const channel = dial(await server.listen("tcp://127.0.0.1:0"));
  const ac = new AbortController();
  return {
    channel,
    signal: ac.signal,
    async stop(): Promise<void> {
      ac.abort();
      channel.close();
      await services.stop();
      await server.close({ graceMs: 0 });
    },
  };
}

describe("cmd-registry services", () => {
  it("serves nsmts.services.v1 with ServiceIPs from the configured ranges and this registry's NSEs as backends", async () => {
    const cfg = config.parse({
      NSM_SERVICES_ROUND_ROBIN_RANGE: "169.254.200.0/24",
      NSM_SERVICES_CLOSEST_RANGE: "169.254.201.0/24",
      NSM_SERVICES_INSTANCE_RANGE: "169.254.210.0/24",
    });
    const nseStore = createMemoryStore("nse");
    const served = await serve(cfg, { nseStore });
    const c = servicesClient(served.channel);
    try {
      const watch = c.dataPlane.watchResolvedServices({ node: "n1", service: "web" }, { signal: served.signal })[Symbol.asyncIterator]();
      expect((await watch.next()).value?.synced).to.equal(true);
      await nseStore.put(
        create(NetworkServiceEndpointSchema, {
          name: "web-1",
          networkServiceNames: ["web"],
          networkServiceLabels: { web: { labels: { "nsmts.io/address": "169.254.10.1", "nsmts.io/ports": "8080", nodeName: "n1" } } },
        }),
      );
      const ev = (await watch.next()).value;
      expect(ev?.service?.backends[0]).to.include({ address: "169.254.10.1", port: 8080, source: "registry", node: "n1" });
      expect(ev?.service?.backends[0]?.instanceIp).to.match(/^169\.254\.210\./);
      const rr = await c.frontends.createFrontend({ service: "web", policy: BalancingPolicy.ROUND_ROBIN });
      const cl = await c.frontends.createFrontend({ service: "web", policy: BalancingPolicy.CLOSEST });
      expect([rr.address, cl.address].map((a) => a.split(".").slice(0, 3).join("."))).to.deep.equal(["169.254.200", "169.254.201"]);
      await watch.return?.();
    } finally {
      await served.stop();
      await nseStore.close();
    }
  });
});

describe("cmd-registry services: NSM_SERVICES_REMOTE_DOMAIN", () => {
  it("needs NSM_PROXY_REGISTRY_URL, excludes NSM_SERVICES_REMOTE_REGISTRY_URL and takes only a DNS name", () => {
    expect(() => config.parse({ NSM_SERVICES_REMOTE_DOMAIN: "cluster-b.example" })).to.throw(
      /NSM_SERVICES_REMOTE_DOMAIN.*NSM_PROXY_REGISTRY_URL/,
    );
    expect(() =>
      config.parse({
        NSM_SERVICES_REMOTE_DOMAIN: "cluster-b.example",
        NSM_SERVICES_REMOTE_REGISTRY_URL: "tcp://127.0.0.1:5002",
        NSM_PROXY_REGISTRY_URL: "tcp://127.0.0.1:5004",
      }),
    ).to.throw(/NSM_SERVICES_REMOTE_DOMAIN.*NSM_SERVICES_REMOTE_REGISTRY_URL/);
    expect(() => config.parse({ NSM_SERVICES_REMOTE_DOMAIN: "bad domain", NSM_PROXY_REGISTRY_URL: "tcp://127.0.0.1:5004" })).to.throw(
      /NSM_SERVICES_REMOTE_DOMAIN/,
    );
    const cfg = config.parse({ NSM_SERVICES_REMOTE_DOMAIN: "cluster-b.example", NSM_PROXY_REGISTRY_URL: "tcp://127.0.0.1:5004" });
    expect(cfg.servicesRemoteDomain).to.equal("cluster-b.example");
  });

  it("another domain's endpoints (found as `@domain` through this registry's chain) join the service of their own name as remote backends", async () => {
    const cfg = config.parse({ NSM_SERVICES_REMOTE_DOMAIN: "cluster-b.example", NSM_PROXY_REGISTRY_URL: "tcp://127.0.0.1:5004" });
    // The other domain as this registry's chain shows it: names `nse@domain`, URLs this domain's nsmgr-proxy.
    const other = createMemoryStore("nse");
    const templates: string[] = [];
    const registry: NseHandler = {
      register: (_ctx, e) => Promise.resolve(e),
      unregister: () => Promise.resolve(),
      find(ctx, query) {
        templates.push(query.template.name);
        return other.find(create(NetworkServiceEndpointSchema), { watch: query.watch, signal: ctx.signal });
      },
    };
    const web = (name: string) =>
      create(NetworkServiceEndpointSchema, {
        name,
        url: "tcp://127.0.0.1:5005",
        networkServiceNames: ["web@cluster-b.example"],
        networkServiceLabels: { "web@cluster-b.example": { labels: { "nsmts.io/address": "198.51.100.7", "nsmts.io/ports": "8080" } } },
      });
    await other.put(web("web-b1@cluster-b.example"));
    const served = await serve(cfg, { nseStore: createMemoryStore("nse"), registry });
    try {
      const watch = servicesClient(served.channel)
        .dataPlane.watchResolvedServices({ node: "n1", service: "web" }, { signal: served.signal })
        [Symbol.asyncIterator]();
      const next = async (): Promise<string[]> => {
        const ev: ResolvedServiceEvent | undefined = (await watch.next()).value;
        return (ev?.service?.backends ?? []).map((b) => `${b.source}:${b.name}:${b.address}:${b.port}`);
      };
      let backends: string[] = [];
      while (!backends.includes("remote:web-b1.cluster-b.example:198.51.100.7:8080")) backends = await next();
      expect(templates).to.include("@cluster-b.example");
      await other.delete("web-b1@cluster-b.example");
      while (backends.length > 0) backends = await next();
      await watch.return?.();
    } finally {
      await served.stop();
      await other.close();
    }
  });
});
