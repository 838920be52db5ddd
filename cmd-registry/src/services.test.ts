import { create } from "@bufbuild/protobuf";
import { NetworkServiceEndpointSchema } from "@nsm-ts/api/registry";
import { BalancingPolicy } from "@nsm-ts/api/services";
import { createServer, dial } from "@nsm-ts/base/grpc";
import { silentLogger } from "@nsm-ts/base/log";
import { createMemoryResourceStore, createResourceManagers } from "@nsm-ts/resources";
import { createMemoryStore } from "@nsm-ts/sdk/registry";
import { servicesClient } from "@nsm-ts/services";
import { expect } from "chai";
import { config } from "./config.js";
import { startServices } from "./services.js";

describe("cmd-registry services", () => {
  it("serves nsmts.services.v1 with ServiceIPs from the configured ranges and this registry's NSEs as backends", async () => {
    const cfg = config.parse({
      NSM_SERVICES_ROUND_ROBIN_RANGE: "169.254.200.0/24",
      NSM_SERVICES_CLOSEST_RANGE: "169.254.201.0/24",
      NSM_SERVICES_INSTANCE_RANGE: "169.254.210.0/24",
    });
    const nseStore = createMemoryStore("nse");
    const server = createServer();
    const services = await startServices(server, cfg, {
      managers: createResourceManagers({ store: createMemoryResourceStore() }),
      nseStore,
      log: silentLogger,
      dial: (url) => dial(url),
    });
    const channel = dial(await server.listen("tcp://127.0.0.1:0"));
    const c = servicesClient(channel);
    const ac = new AbortController();
    try {
      const watch = c.dataPlane.watchResolvedServices({ node: "n1", service: "web" }, { signal: ac.signal })[Symbol.asyncIterator]();
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
      ac.abort();
      channel.close();
      await services.stop();
      await server.close({ graceMs: 0 });
      await nseStore.close();
    }
  });
});
