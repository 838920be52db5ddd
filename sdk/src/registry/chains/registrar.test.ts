import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { create } from "@bufbuild/protobuf";
import { type NetworkService, type NetworkServiceEndpoint, NetworkServiceEndpointSchema, NetworkServiceSchema } from "@nsm-ts/api/registry";
import { CallContext } from "@nsm-ts/base/context";
import { createServer, dial, type NsmServer } from "@nsm-ts/base/grpc";
import { ephemeralIdentity } from "@nsm-ts/base/identity";
import { silentLogger } from "@nsm-ts/base/log";
import { createTokenGenerator, type TokenGenerator } from "@nsm-ts/base/token";
import { expect } from "chai";
import { serveRegistry } from "../grpc/index.js";
import { createMemoryStore, type RegistryStore } from "../store/index.js";
import { createRegistryClient } from "./client.js";
import { createRegistrar, ensureNetworkServices, type Registrar } from "./registrar.js";
import { createRegistryServer } from "./server.js";

/** The first event of `store` about `name` that is not a deletion (waits for it). */
async function arrival<T extends NetworkService | NetworkServiceEndpoint>(store: RegistryStore<T>, template: T, name: string): Promise<T> {
  const ac = new AbortController();
  try {
    for await (const ev of store.find(template, { watch: true, signal: ac.signal })) {
      if (!ev.deleted && ev.entry.name === name) return ev.entry;
    }
    throw new Error("watch ended");
  } finally {
    ac.abort();
  }
}

describe("registry createRegistrar", function () {
  this.timeout(20_000);
  let dir: string;
  let url: string;
  let gen: TokenGenerator;
  let server: NsmServer | undefined;
  let registrar: Registrar | undefined;
  let stores: { ns: RegistryStore<NetworkService>; nse: RegistryStore<NetworkServiceEndpoint> };

  async function startRegistry(): Promise<void> {
    stores = { ns: createMemoryStore("ns"), nse: createMemoryStore("nse") };
    server = createServer();
    serveRegistry(server, createRegistryServer({ tokenGenerator: gen, nsStore: stores.ns, nseStore: stores.nse }));
    url = await server.listen(`unix://${join(dir, "registry.sock")}`);
  }
  async function stopRegistry(): Promise<void> {
    await server?.close();
    await stores.ns.close();
    await stores.nse.close();
  }

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), "nsm-registrar-"));
    gen = createTokenGenerator(await ephemeralIdentity("spiffe://test.com/registry"), { maxTokenLifetimeMs: 600_000 });
    await startRegistry();
  });
  afterEach(async () => {
    await registrar?.close();
    await stopRegistry();
    rmSync(dir, { recursive: true, force: true });
  });

  it("ensureNetworkServices: a service another endpoint owns is no error; the first owner keeps it", async () => {
    const ch = dial(url);
    try {
      const client = async (who: string) =>
        createRegistryClient("ns", ch, {
          tokenGenerator: createTokenGenerator(await ephemeralIdentity(`spiffe://test.com/${who}`), { maxTokenLifetimeMs: 600_000 }),
        });
      const ctx = () => CallContext.create({ deadline: Date.now() + 5_000 });
      const first = await client("nse-a");
      const second = await client("nse-b");
      await ensureNetworkServices(first, ctx, ["svc-1", "svc-2"], "IP", silentLogger);
      await ensureNetworkServices(second, ctx, ["svc-1"], "ETHERNET", silentLogger);
      const stored = await arrival(stores.ns, create(NetworkServiceSchema, { name: "svc-1" }), "svc-1");
      expect(stored.payload, "the first registrant's service stands").to.equal("IP");
      const bad = await ensureNetworkServices(second, ctx, [""], "IP", silentLogger).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(bad, "other errors are thrown").to.be.instanceOf(Error);
    } finally {
      ch.close();
    }
  });

  it("registers, finds and unregisters a service and an endpoint without a hand-built context", async () => {
    const nseGen = createTokenGenerator(await ephemeralIdentity("spiffe://test.com/nse"), { maxTokenLifetimeMs: 600_000 });
    registrar = createRegistrar(url, { tokenGenerator: nseGen });
    const ns = await registrar.registerService({ name: "svc", payload: "ETHERNET" });
    expect(ns.name).to.equal("svc");
    const nse = await registrar.registerEndpoint({ name: "nse-1", url: "tcp://198.51.100.7:5002", networkServiceNames: ["svc"] });
    expect(nse.pathIds[0]).to.equal("spiffe://test.com/nse");
    expect((await registrar.findEndpoints({ networkServiceNames: ["svc"] })).map((e) => [e.name, e.url])).to.deep.equal([
      ["nse-1", "tcp://198.51.100.7:5002"],
    ]);
    expect((await registrar.findServices()).map((s) => s.name)).to.deep.equal(["svc"]);
    await registrar.unregisterEndpoint("nse-1");
    expect(await stores.nse.get("nse-1")).to.equal(undefined);
    await registrar.unregisterService("svc");
    expect(await stores.ns.get("svc")).to.equal(undefined);
  });

  it("registers the service and the endpoint again with a registry that restarted empty", async () => {
    registrar = createRegistrar(url, { tokenGenerator: gen });
    await registrar.registerService({ name: "svc", payload: "ETHERNET" });
    await registrar.registerEndpoint({ name: "nse-1", url: "tcp://198.51.100.7:5002", networkServiceNames: ["svc"] });
    await stopRegistry();
    await startRegistry();
    const [ns, nse] = await Promise.all([
      arrival(stores.ns, create(NetworkServiceSchema), "svc"),
      arrival(stores.nse, create(NetworkServiceEndpointSchema), "nse-1"),
    ]);
    expect([ns.payload, nse.url]).to.deep.equal(["ETHERNET", "tcp://198.51.100.7:5002"]);
  });
});
