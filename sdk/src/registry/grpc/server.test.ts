/**
 * The registry over real gRPC on loopback: the `path` metadata/header round trip
 * (docs/wire-compatibility.md#registry-path-metadata) including an old client that sends no path, malformed input
 * answered with InvalidArgument naming the field while the server keeps serving, watches on cancelled streams, and
 * the remote expire case (a watcher sees the delete event).
 */
import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import {
  type NetworkServiceEndpoint,
  NetworkServiceEndpointRegistry,
  NetworkServiceEndpointSchema,
  NetworkServiceLabelsSchema,
  NetworkServiceRegistry,
} from "@nsm-ts/api/registry";
import { MockClock } from "@nsm-ts/base/clock";
import { CallContext } from "@nsm-ts/base/context";
import { type Channel, createClient, createServer, dial, type NsmServer } from "@nsm-ts/base/grpc";
import { ephemeralIdentity } from "@nsm-ts/base/identity";
import { Code, isStatusError } from "@nsm-ts/base/status";
import { createTokenGenerator, decodeToken, type TokenGenerator, tokenMetadata } from "@nsm-ts/base/token";
import { ns, nse, Pull } from "@nsm-ts/testing/registry";
import { expect } from "chai";
import { createRegistryClient, createRegistryServer } from "../chains/index.js";
import * as connect from "../common/connect/index.js";
import { emptyPath, parsePath, pathKey } from "../common/grpcmetadata/index.js";
import { registryHandler } from "../core/index.js";
import { createMemoryStore, type RegistryStore } from "../store/index.js";
import { serveRegistry } from "./index.js";

const PATH_JSON = /^\{"Index":\d+,"PathSegments":\[(\{"token":"[A-Za-z0-9_.-]+"\},?)+\]\}$/;

async function generator(name: string, clock: MockClock): Promise<TokenGenerator> {
  return createTokenGenerator(await ephemeralIdentity(`spiffe://test.com/${name}`), { maxTokenLifetimeMs: 600_000, clock });
}

describe("registry over gRPC", () => {
  let clock: MockClock;
  let server: NsmServer;
  let nsStore: RegistryStore<ReturnType<typeof ns>>;
  let nseStore: RegistryStore<NetworkServiceEndpoint>;
  let channel: Channel;
  let ac: AbortController;
  let client: TokenGenerator;

  beforeEach(async () => {
    clock = new MockClock(Date.now());
    ac = new AbortController();
    nsStore = createMemoryStore("ns", { clock });
    nseStore = createMemoryStore("nse", { clock });
    const chains = createRegistryServer({ tokenGenerator: await generator("registry", clock), nsStore, nseStore, expirePeriodMs: 3000 });
    server = createServer();
    serveRegistry(server, chains, { clock });
    const url = await server.listen("tcp://127.0.0.1:0");
    channel = dial(url);
    client = await generator("client", clock);
  });
  afterEach(async () => {
    ac.abort();
    channel.close();
    await server.close({ graceMs: 100 });
    await nsStore.close();
    await nseStore.close();
    expect(clock.pending()).to.equal(0);
  });

  const raw = () => createClient(NetworkServiceEndpointRegistry, channel);

  it("sends the path as JSON metadata and adopts the updated path from the response header", async () => {
    const ctx = CallContext.create({ clock, signal: ac.signal });
    const h = registryHandler(connect.newClient("nse", channel, { tokenGenerator: client }));
    const path = emptyPath();
    const own = await client();
    path.segments.push({ token: own.token });
    const res = await h.register(ctx.with(pathKey, path), nse("a"));
    expect(path.index).to.equal(0);
    expect(path.segments).to.have.length(2);
    expect(decodeToken(path.segments[1]!.token).sub).to.equal("spiffe://test.com/registry");
    expect(res.pathIds).to.deep.equal(["spiffe://test.com/client", "spiffe://test.com/registry"]);

    let header: string | undefined;
    await raw().register(nse("b"), {
      metadata: { ...tokenMetadata(own), path: JSON.stringify({ Index: 0, PathSegments: [{ token: own.token }] }) },
      onHeader: (h) => (header = h.path),
    });
    expect(header).to.match(PATH_JSON);
    expect(parsePath(header!).segments).to.have.length(2);
  });

  it("serves an old client that sends no path, owning the name by its token", async () => {
    const own = await client();
    let header: string | undefined;
    const res = await raw().register(nse("old"), { metadata: tokenMetadata(own), onHeader: (h) => (header = h.path) });
    expect(res.pathIds).to.deep.equal(["spiffe://test.com/client", "spiffe://test.com/registry"]);
    expect(header).to.match(PATH_JSON);
    const other = await (await generator("other", clock))();
    const err = await raw()
      .unregister(nse("old"), { metadata: tokenMetadata(other) })
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(isStatusError(err, Code.PermissionDenied), String(err)).to.equal(true);
    await raw().unregister(nse("old"), { metadata: tokenMetadata(own) });
    expect(await nseStore.get("old")).to.equal(undefined);
  });

  it("answers malformed input with InvalidArgument naming the field and keeps serving", async () => {
    const md = tokenMetadata(await client());
    const labels = (l: Record<string, Record<string, string>>) =>
      Object.fromEntries(Object.entries(l).map(([k, v]) => [k, create(NetworkServiceLabelsSchema, { labels: v })]));
    const past = nse("p");
    past.expirationTime = timestampFromMs(clock.now() - 1000);
    const cases: [string, () => Promise<unknown>][] = [
      ["name", () => raw().register(nse(""), { metadata: md })],
      ["name", () => raw().unregister(nse(""), { metadata: md })],
      ["url", () => raw().register(nse("u", [], {}, "http://198.51.100.1:80"), { metadata: md })],
      ["url", () => raw().register(nse("u", [], {}, "tcp://no-port"), { metadata: md })],
      ["expiration_time", () => raw().register(past, { metadata: md })],
      [
        "network_service_labels",
        () =>
          raw().register(create(NetworkServiceEndpointSchema, { name: "l", networkServiceLabels: labels({ "": { a: "b" } }) }), {
            metadata: md,
          }),
      ],
      [
        "network_service_labels",
        () =>
          raw().register(create(NetworkServiceEndpointSchema, { name: "l", networkServiceLabels: labels({ svc: { "": "b" } }) }), {
            metadata: md,
          }),
      ],
      ["path", () => raw().register(nse("j"), { metadata: { ...md, path: "{not json" } })],
      ["Index", () => raw().register(nse("j"), { metadata: { ...md, path: '{"Index":-1,"PathSegments":[]}' } })],
      ["name", () => createClient(NetworkServiceRegistry, channel).register(ns(""), { metadata: md })],
    ];
    for (const [field, call] of cases) {
      const err = await call().then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(isStatusError(err, Code.InvalidArgument), `${field}: ${String(err)}`).to.equal(true);
      expect((err as Error).message).to.contain(field);
      expect((await raw().register(nse("fine"), { metadata: md })).name).to.equal("fine");
    }
    expect((await nseStore.get("fine"))?.name).to.equal("fine");
  });

  it("survives watches whose client has already gone and serves the next call", async () => {
    for (let i = 0; i < 20; i++) {
      const gone = new AbortController();
      const stream = raw().find({ networkServiceEndpoint: {}, watch: true }, { signal: gone.signal });
      const it = stream[Symbol.asyncIterator]();
      const first = it.next();
      gone.abort();
      const err = await first.then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err === undefined || isStatusError(err, Code.Canceled), String(err)).to.equal(true);
    }
    await raw().register(nse("after"), { metadata: tokenMetadata(await client()) });
    const found: string[] = [];
    // Upstream sends no path on Find (docs/wire-compatibility.md#registry-path-metadata); one is ignored, even a
    // malformed one.
    for await (const r of raw().find({ networkServiceEndpoint: { name: "after" } }, { metadata: { path: "{junk" } })) {
      found.push(r.networkServiceEndpoint!.name);
    }
    expect(found).to.deep.equal(["after"]);
  });

  it("expires a remote registration that is not refreshed and tells a remote watcher (remote expire case)", async () => {
    const ctx = CallContext.create({ clock, signal: ac.signal });
    const reg = registryHandler(connect.newClient("nse", channel, { tokenGenerator: client }));
    const watcher = new Pull(reg.find(ctx, { template: create(NetworkServiceEndpointSchema, { name: "short" }), watch: true }));
    const res = await reg.register(ctx, nse("short", ["svc"]));
    expect(Number(res.expirationTime!.seconds) * 1000 + res.expirationTime!.nanos / 1e6).to.equal(clock.now() + 3000);
    expect((await watcher.next()).deleted).to.equal(false);
    await clock.advance(3000);
    const ev = await watcher.next();
    expect([ev.entry.name, ev.deleted]).to.deep.equal(["short", true]);
  });

  it("a client chain keeps its registration alive with refresh and ends it on unregister", async () => {
    const ctx = CallContext.create({ clock, signal: ac.signal });
    const c = createRegistryClient("nse", channel, { tokenGenerator: client, signal: ac.signal, clientInfo: { nodeName: "node-1" } });
    const watcher = new Pull(c.find(ctx, { template: create(NetworkServiceEndpointSchema, { name: "kept" }), watch: true }));
    const res = await c.register(ctx, nse("kept", ["svc"]));
    expect(res.networkServiceLabels.svc?.labels).to.deep.equal({ nodeName: "node-1" });
    expect((await watcher.next()).deleted).to.equal(false);
    for (let i = 0; i < 3; i++) {
      await clock.advance(2000); // ⅔ of the 3 s period: a refresh
      expect((await watcher.next()).deleted).to.equal(false);
    }
    expect(await nseStore.get("kept")).to.not.equal(undefined);
    await c.unregister(ctx, nse("kept", ["svc"]));
    expect((await watcher.next()).deleted).to.equal(true);
    expect(clock.pending()).to.equal(0);
  });

  it("cuts off a watcher that stops reading with RESOURCE_EXHAUSTED, while registrations and other watchers go on", async function () {
    this.timeout(30_000);
    const small = createMemoryStore("nse", { clock, watchBuffer: 16 });
    const srv = createServer();
    const ch = dial(
      await (async () => {
        serveRegistry(srv, { nse: createRegistryServer({ tokenGenerator: client, nsStore, nseStore: small }).nse }, { clock });
        return srv.listen("tcp://127.0.0.1:0");
      })(),
    );
    try {
      const ctx = CallContext.create({ clock, signal: ac.signal });
      const h = registryHandler(connect.newClient("nse", ch, { tokenGenerator: client }));
      const all = create(NetworkServiceEndpointSchema);
      const stuck = new Pull(h.find(ctx, { template: all, watch: true }));
      const live = new Pull(h.find(ctx, { template: all, watch: true }));
      // Both watches are attached once each has seen the first registration.
      await h.register(ctx, nse("e0"));
      expect((await stuck.next()).entry.name).to.equal("e0");
      expect((await live.next()).entry.name).to.equal("e0");
      const n = 1500; // well past (about 600 got through in practice) the 16-event buffer plus what HTTP/2 flow control lets the transport hold
      const fast = registryHandler(connect.newClient("nse", ch)); // no per-call token: quicker registrations
      for (let i = 1; i < n; i++) {
        await fast.register(ctx, nse(`e${i}`));
        expect((await live.next()).entry.name).to.equal(`e${i}`);
      }
      const seen: string[] = [];
      const err = await (async () => {
        try {
          for (;;) seen.push((await stuck.next()).entry.name);
        } catch (e) {
          return e;
        }
      })();
      expect(isStatusError(err, Code.ResourceExhausted), String(err)).to.equal(true);
      expect(seen.length).to.be.lessThan(n - 1);
      expect(seen).to.deep.equal(Array.from({ length: seen.length }, (_, i) => `e${i + 1}`));
    } finally {
      ch.close();
      await srv.close({ graceMs: 100 });
      await small.close();
    }
  });
});
