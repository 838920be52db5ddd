/**
 * querycache against a real registry over gRPC: repeated Finds stay in memory, two caches (an nsmgr's and a
 * forwarder's, say) see a Register and an Unregister within 100 ms, idle queries close their watch, a broken
 * watch sends the next Find to the registry again.
 */
import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { type NetworkServiceEndpoint, NetworkServiceEndpointSchema } from "@nsm-ts/api/registry";
import { MockClock } from "@nsm-ts/base/clock";
import { CallContext } from "@nsm-ts/base/context";
import { type Channel, createServer, dial, type NsmServer } from "@nsm-ts/base/grpc";
import { ephemeralIdentity } from "@nsm-ts/base/identity";
import { createTokenGenerator } from "@nsm-ts/base/token";
import { collect, nse } from "@nsm-ts/testing/registry";
import { expect } from "chai";
import { createRegistryServer } from "../../chains/index.js";
import { type RegistryElement, type RegistryEntry, registryChain, registryHandler } from "../../core/index.js";
import { serveRegistry } from "../../grpc/index.js";
import { createMemoryStore, type RegistryStore } from "../../store/index.js";
import * as connect from "../connect/index.js";
import { newClient, type QueryCacheOptions } from "./index.js";

/** Counts the non-watch Finds that get past the cache. */
function findCounter(): { el: RegistryElement<NetworkServiceEndpoint>; direct: () => number } {
  let n = 0;
  return {
    direct: () => n,
    el: {
      register: (ctx, e, next) => next.register(ctx, e),
      find(ctx, q, next) {
        if (!q.watch) n++;
        return next.find(ctx, q);
      },
      unregister: (ctx, e, next) => next.unregister(ctx, e),
    },
  };
}

/** Resolves at the first cache change for which `pred` holds. */
class Changes {
  private waiters: Array<{ pred: (e: RegistryEntry, deleted: boolean) => boolean; resolve: () => void }> = [];
  readonly onChange = (e: RegistryEntry, deleted: boolean): void => {
    const hit = this.waiters.filter((w) => w.pred(e, deleted));
    this.waiters = this.waiters.filter((w) => !w.pred(e, deleted));
    for (const w of hit) w.resolve();
  };
  next(pred: (e: RegistryEntry, deleted: boolean) => boolean): Promise<void> {
    return new Promise((resolve) => this.waiters.push({ pred, resolve }));
  }
}

const service = (s: string) => create(NetworkServiceEndpointSchema, { networkServiceNames: [s] });
const names = (rs: { entry: RegistryEntry }[]) => rs.map((r) => r.entry.name).sort();

describe("registry querycache", () => {
  let clock: MockClock;
  let server: NsmServer;
  let url: string;
  let nseStore: RegistryStore<NetworkServiceEndpoint>;
  let channels: Channel[];
  let ac: AbortController;

  async function startRegistry(): Promise<void> {
    nseStore = createMemoryStore("nse", { clock });
    const chains = createRegistryServer({
      tokenGenerator: async () => ({ token: "t", expires: new Date(clock.now() + 60_000) }),
      nsStore: createMemoryStore("ns", { clock }),
      nseStore,
    });
    server = createServer();
    serveRegistry(server, chains, { clock });
    url = await server.listen(url ?? "tcp://127.0.0.1:0");
  }

  beforeEach(async () => {
    clock = new MockClock(Date.now());
    ac = new AbortController();
    channels = [];
    url = undefined as unknown as string;
    await startRegistry();
  });
  afterEach(async () => {
    ac.abort();
    for (const c of channels) c.close();
    await server.close({ graceMs: 0 });
    await nseStore.close();
    await new Promise((r) => setImmediate(r));
    expect(clock.pending(), "timers left").to.equal(0);
  });

  function cached(opts: QueryCacheOptions = {}) {
    const ch = dial(url, { grpcOptions: { "grpc.initial_reconnect_backoff_ms": 50, "grpc.max_reconnect_backoff_ms": 200 } });
    channels.push(ch);
    const counter = findCounter();
    const changes = new Changes();
    const cache = newClient<NetworkServiceEndpoint>({ clock, signal: ac.signal, onChange: changes.onChange, ...opts });
    const h = registryHandler(registryChain(cache, counter.el, connect.newClient("nse", ch)));
    const find = (template = service("ns-1")) => collect(h.find(CallContext.create({ clock }), { template, watch: false }));
    return { cache, h, find, counter, changes };
  }
  const direct = async () => {
    const ch = dial(url);
    channels.push(ch);
    const tokenGenerator = createTokenGenerator(await ephemeralIdentity("spiffe://test.com/registrant"), {
      clock,
      maxTokenLifetimeMs: 600_000,
    });
    return registryHandler(connect.newClient("nse", ch, { tokenGenerator }));
  };
  const ctx = () => CallContext.create({ clock });

  it("answers a repeated Find from memory; another query is a miss", async () => {
    await (await direct()).register(ctx(), nse("nse-1", ["ns-1"]));
    const a = cached();
    expect(names(await a.find())).to.deep.equal(["nse-1"]);
    expect(a.counter.direct()).to.equal(1);
    for (let i = 0; i < 5; i++) expect(names(await a.find())).to.deep.equal(["nse-1"]);
    expect(a.counter.direct(), "no registry round trip after the first").to.equal(1);
    expect(a.cache.size).to.equal(1);
    expect(names(await a.find(create(NetworkServiceEndpointSchema, { name: "nse-1" })))).to.deep.equal(["nse-1"]);
    expect(a.counter.direct(), "another query is a miss").to.equal(2);
  });

  it("a Register and an Unregister show in two caches within 100 ms", async () => {
    const reg = await direct();
    await reg.register(ctx(), nse("nse-1", ["ns-1"]));
    const [a, b] = [cached(), cached()];
    await a.find();
    await b.find();
    const added = [a, b].map((c) => c.changes.next((e, deleted) => e.name === "nse-2" && !deleted));
    const t0 = performance.now();
    await reg.register(ctx(), nse("nse-2", ["ns-1"]));
    await Promise.all(added);
    const addMs = performance.now() - t0;
    for (const c of [a, b]) expect(names(await c.find())).to.deep.equal(["nse-1", "nse-2"]);
    const removed = [a, b].map((c) => c.changes.next((e, deleted) => e.name === "nse-1" && deleted));
    const t1 = performance.now();
    await reg.unregister(ctx(), nse("nse-1", ["ns-1"]));
    await Promise.all(removed);
    const removeMs = performance.now() - t1;
    for (const c of [a, b]) expect(names(await c.find())).to.deep.equal(["nse-2"]);
    expect(a.counter.direct() + b.counter.direct(), "every later answer came from the caches").to.equal(2);
    expect(addMs, "registered → in both caches").to.be.below(100);
    expect(removeMs, "unregistered → gone from both caches").to.be.below(100);
  });

  it("leaves out endpoints whose expiration has passed", async () => {
    const reg = await direct();
    const e = nse("nse-1", ["ns-1"]);
    await reg.register(ctx(), e);
    // The caller's clock: only its view of time moves, the registry keeps the entry.
    const cacheClock = new MockClock(clock.now());
    const a = cached({ clock: cacheClock, expireTimeoutMs: 3_600_000 });
    const find = () => collect(a.h.find(CallContext.create({ clock: cacheClock }), { template: service("ns-1"), watch: false }));
    const first = await find();
    expect(names(first)).to.deep.equal(["nse-1"]);
    const at = (first[0]?.entry as NetworkServiceEndpoint | undefined)?.expirationTime;
    expect(at, "the registry set an expiration").to.not.equal(undefined);
    const atMs = Number(at?.seconds) * 1000;
    expect(timestampFromMs(atMs).seconds).to.equal(at?.seconds);
    await cacheClock.set(atMs - 1000);
    expect(names(await find())).to.deep.equal(["nse-1"]);
    await cacheClock.set(atMs + 1000);
    expect(names(await find()), "expired in the cache's eyes").to.deep.equal([]);
    expect(a.counter.direct(), "both answers from memory").to.equal(1);
    ac.abort();
    expect(cacheClock.pending()).to.equal(0);
  });

  it("closes the watch of a query not asked for expireTimeoutMs, and asks the registry again after", async () => {
    await (await direct()).register(ctx(), nse("nse-1", ["ns-1"]));
    const a = cached({ expireTimeoutMs: 10_000 });
    await a.find();
    await clock.advance(5_000);
    await a.find();
    expect(a.cache.size).to.equal(1);
    await clock.advance(10_000);
    expect(a.cache.size, "idle query dropped").to.equal(0);
    await a.find();
    expect(a.counter.direct()).to.equal(2);
  });

  it("forgets a query whose watch broke (registry restart), so the next Find reads the new registry", async () => {
    await (await direct()).register(ctx(), nse("nse-1", ["ns-1"]));
    const a = cached();
    await a.find();
    expect(a.cache.size).to.equal(1);
    await server.close({ graceMs: 0 });
    await nseStore.close();
    while (a.cache.size > 0) await new Promise<void>((r) => setImmediate(r));
    await startRegistry();
    await (await direct()).register(ctx(), nse("nse-9", ["ns-1"]));
    expect(names(await a.find())).to.deep.equal(["nse-9"]);
  });

  it("the owner's signal ends every watch and the cache answers nothing from memory after", async () => {
    const a = cached();
    await a.find();
    await a.find(create(NetworkServiceEndpointSchema, { name: "x" }));
    expect(a.cache.size).to.equal(2);
    ac.abort();
    expect(a.cache.size).to.equal(0);
    await a.find();
    expect(a.counter.direct()).to.equal(3);
    expect(a.cache.size).to.equal(0);
  });
});
