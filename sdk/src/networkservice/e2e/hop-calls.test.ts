/**
 * The gRPC calls a local Request makes (issue 13): client → nsmgr → forwarder → endpoint over real gRPC, every
 * server counting the calls it serves per method. Once warm, one connection at a time (Request, then Close) costs
 * each hop the Request and Close it forwards and nothing more: the nsmgr's network service look-up comes from its
 * watch-fed cache, and a next hop's monitor stream outlives the last watch, so the next connection joins it.
 */

import { create } from "@bufbuild/protobuf";
import { NetworkServiceEndpointSchema, NetworkServiceSchema } from "@nsm-ts/api/registry";
import { CallContext } from "@nsm-ts/base/context";
import { type Channel, createServer, dial, type NsmServer, type ServerInterceptor } from "@nsm-ts/base/grpc";
import { devIdentity } from "@nsm-ts/base/identity";
import { createTokenGenerator } from "@nsm-ts/base/token";
import { expect } from "chai";
import { createRegistryClient, createRegistryServer } from "../../registry/chains/index.js";
import { serveRegistry } from "../../registry/grpc/index.js";
import { createMemoryStore } from "../../registry/store/index.js";
import { createForwarder, type Forwarder } from "../chains/forwarder/index.js";
import { client, endpoint, type NsmClient } from "../chains/index.js";
import { createNsmgr, type Nsmgr } from "../chains/nsmgr/index.js";
import * as mechanisms from "../common/mechanisms/index.js";
import { passThrough } from "../core/chain.js";

type Counts = Map<string, number>;

/** A server counting the calls it serves, by method name ("Request", "MonitorConnections", "Find", …). */
function countingServer(counts: Counts): NsmServer {
  const count: ServerInterceptor = (next) => (call) => {
    const method = call.path.slice(call.path.lastIndexOf("/") + 1);
    counts.set(method, (counts.get(method) ?? 0) + 1);
    return next(call);
  };
  return createServer({ interceptors: [count] });
}

const snapshot = (c: Counts): Record<string, number> => Object.fromEntries(c);
const delta = (after: Record<string, number>, before: Record<string, number>): Record<string, number> =>
  Object.fromEntries(Object.entries(after).map(([k, v]) => [k, v - (before[k] ?? 0)]));

describe("calls per local Request (client → nsmgr → forwarder → endpoint)", () => {
  const counts = { registry: new Map(), nsmgr: new Map(), forwarder: new Map(), nse: new Map() } satisfies Record<string, Counts>;
  let servers: NsmServer[];
  let channels: Channel[];
  let lifetime: AbortController;
  let nsmgr: Nsmgr;
  let fwd: Forwarder;
  let nsc: NsmClient;

  before(async function () {
    this.timeout(20_000);
    servers = [];
    channels = [];
    lifetime = new AbortController();
    const gen = async (name: string) => createTokenGenerator(await devIdentity(name), { maxTokenLifetimeMs: 10 * 60_000 });
    const serve = (c: Counts): NsmServer => {
      const s = countingServer(c);
      servers.push(s);
      return s;
    };

    const reg = serve(counts.registry);
    serveRegistry(
      reg,
      createRegistryServer({ tokenGenerator: await gen("registry"), nsStore: createMemoryStore("ns"), nseStore: createMemoryStore("nse") }),
    );
    const registryUrl = await reg.listen("tcp://127.0.0.1:0");

    const nsmgrServer = serve(counts.nsmgr);
    const nsmgrUrl = await nsmgrServer.listen("tcp://127.0.0.1:0");
    nsmgr = createNsmgr({
      name: "nsmgr",
      url: nsmgrUrl,
      registryUrl,
      tokenGenerator: await gen("nsmgr"),
      insecure: true,
      excludedPrefixes: false,
    });
    nsmgr.serve(nsmgrServer);

    const fwdServer = serve(counts.forwarder);
    const fwdUrl = await fwdServer.listen("tcp://127.0.0.1:0");
    fwd = createForwarder({ name: "forwarder", url: fwdUrl, nsmgrUrl, tokenGenerator: await gen("forwarder"), insecure: true });
    fwd.serve(fwdServer);
    await fwd.register();

    const nseGen = await gen("nse");
    const ep = endpoint({ name: "nse", tokenGenerator: nseGen, insecure: true, additional: [mechanisms.newServer({ NOOP: passThrough })] });
    const epServer = serve(counts.nse);
    const epUrl = await epServer.listen("tcp://127.0.0.1:0");
    ep.serve(epServer);
    const ch = dial(nsmgrUrl);
    channels.push(ch);
    await createRegistryClient("ns", ch, { tokenGenerator: nseGen }).register(
      CallContext.create(),
      create(NetworkServiceSchema, { name: "ns-1", payload: "ETHERNET" }),
    );
    await createRegistryClient("nse", ch, { tokenGenerator: nseGen, signal: lifetime.signal }).register(
      CallContext.create(),
      create(NetworkServiceEndpointSchema, { name: "nse", url: epUrl, networkServiceNames: ["ns-1"] }),
    );
    nsc = client({
      name: "nsc",
      connectTo: nsmgrUrl,
      tokenGenerator: await gen("nsc"),
      insecure: true,
      mechanismPreferences: [mechanisms.noop.mechanism()],
      refresh: false,
      heal: false,
      retry: false,
    });
  });

  after(async () => {
    lifetime.abort();
    await nsc.dispose();
    await fwd.close();
    nsmgr.close();
    for (const c of channels) c.close();
    await Promise.all(servers.map((s) => s.close({ graceMs: 100 })));
  });

  it("once warm, each hop serves the Request and Close it forwards and nothing else", async function () {
    this.timeout(20_000);
    const once = async (): Promise<void> => {
      const conn = await nsc.request({ connection: { networkService: "ns-1" } });
      expect(conn.path?.pathSegments.map((s) => s.name)).to.deep.equal(["nsc", "nsmgr", "forwarder", "nse"]);
      await nsc.close(conn);
    };
    await once();
    const before = { registry: snapshot(counts.registry), forwarder: snapshot(counts.forwarder), nse: snapshot(counts.nse) };
    for (let i = 0; i < 5; i++) await once();
    // No registry call at all: the nsmgr's and the forwarder's look-ups come from their caches.
    expect(delta(snapshot(counts.registry), before.registry), "registry").to.deep.equal(
      Object.fromEntries(Object.keys(before.registry).map((k) => [k, 0])),
    );
    // No new monitor stream per connection at the forwarder (the nsmgr's watch) or the endpoint (the forwarder's).
    expect(delta(snapshot(counts.forwarder), before.forwarder), "forwarder").to.deep.include({
      Request: 5,
      Close: 5,
      MonitorConnections: 0,
    });
    expect(delta(snapshot(counts.nse), before.nse), "endpoint").to.deep.include({ Request: 5, Close: 5, MonitorConnections: 0 });
  });
});
