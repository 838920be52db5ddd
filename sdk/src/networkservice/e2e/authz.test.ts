/**
 * Authorization in the secure mode as upstream defines it (docs/wire-compatibility.md#policies), over a small
 * mesh with mTLS everywhere: a registry, an nsmgr, a forwarder and an endpoint, each with its own certificate,
 * and two workloads of the same trust domain: alice (a client with a live connection, an endpoint owner) and
 * mallory (a second workload with a valid certificate of its own).
 */

import { randomUUID } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import {
  type Connection,
  type ConnectionEvent,
  ConnectionSchema,
  MonitorConnection,
  type MonitorScopeSelector,
  MonitorScopeSelectorSchema,
  NetworkService,
  NetworkServiceRequestSchema,
} from "@nsm-ts/api/networkservice";
import { NetworkServiceEndpointSchema, NetworkServiceSchema } from "@nsm-ts/api/registry";
import { MockClock } from "@nsm-ts/base/clock";
import { CallContext } from "@nsm-ts/base/context";
import { type Channel, createClient, createServer, dial, type NsmServer } from "@nsm-ts/base/grpc";
import { type Identity, loadIdentity } from "@nsm-ts/base/identity";
import { Code, StatusError } from "@nsm-ts/base/status";
import { createTokenGenerator, decodeToken, type TokenGenerator, tokenMetadata } from "@nsm-ts/base/token";
import { type Counter, newCounter } from "@nsm-ts/testing/elements";
import { TestPki } from "@nsm-ts/testing/pki";
import { expect } from "chai";
import { createRegistryClient, createRegistryServer } from "../../registry/chains/index.js";
import { pathKey } from "../../registry/common/grpcmetadata/index.js";
import { serveRegistry } from "../../registry/grpc/index.js";
import { createMemoryStore } from "../../registry/store/index.js";
import { createForwarder, type Forwarder } from "../chains/forwarder/index.js";
import { client, type Endpoint, endpoint, type NsmClient } from "../chains/index.js";
import { createNsmgr, type Nsmgr } from "../chains/nsmgr/index.js";
import * as mechanisms from "../common/mechanisms/index.js";
import { type NetworkServiceElement, passThrough } from "../core/index.js";

const LIFETIME_MS = 10 * 60_000;
const TD = "spiffe://authz.nsm-ts";

const gen = (id: Identity): TokenGenerator => createTokenGenerator(id, { maxTokenLifetimeMs: LIFETIME_MS });

/** Tokens of `id` that expired `agoMs` ago, sent with an `expires` that lies (an hour ahead). */
function expiredGen(id: Identity, agoMs: number): TokenGenerator {
  const clock = new MockClock(Date.now() - agoMs - LIFETIME_MS);
  const g = createTokenGenerator(id, { maxTokenLifetimeMs: LIFETIME_MS, clock });
  return async (peer) => ({ token: (await g(peer)).token, expires: new Date(Date.now() + 3_600_000) });
}

async function rejection(p: Promise<unknown>): Promise<StatusError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err, "expected the call to fail").to.be.instanceOf(StatusError);
  return err as StatusError;
}

/** The first monitor event, or the error that ended the stream first. */
async function firstEvent(ch: Channel, selector: MonitorScopeSelector): Promise<ConnectionEvent | StatusError> {
  try {
    for await (const ev of createClient(MonitorConnection, ch).monitorConnections(selector, { timeoutMs: 5_000 })) return ev;
  } catch (err) {
    if (err instanceof StatusError) return err;
    throw err;
  }
  throw new Error("the monitor stream ended without an event");
}

describe("authorization in secure mode (registry, nsmgr, forwarder, endpoint; alice and mallory)", function () {
  this.timeout(20_000);
  let pki: TestPki;
  const ids: Record<string, Identity> = {};
  const load = (name: string): Promise<Identity> => loadIdentity({ ...pki.leaf(name, { san: `URI:${TD}/${name}` }), caFile: pki.caFile });

  before(async () => {
    pki = new TestPki("authz-ca");
    for (const n of ["registry", "nsmgr", "forwarder", "nse", "alice", "mallory"]) ids[n] = await load(n);
  });
  after(() => pki.remove());

  const id = (n: string): Identity =>
    ids[n] ??
    (() => {
      throw new Error(`no identity ${n}`);
    })();

  let lifetime: AbortController;
  let servers: NsmServer[];
  let channels: Channel[];
  let clients: NsmClient[];
  let registryUrl: string;
  let nsmgrUrl: string;
  let nsmgr: Nsmgr;
  let fwd: Forwarder;
  let ep: Endpoint;
  let counter: Counter;
  /** When set, the nsmgr replaces segment 0's token before forwarding (a hop that forwards a stale path). */
  let tamper: string | undefined;

  const channel = (url: string, who: string): Channel => {
    const ch = dial(url, { tls: id(who).tls });
    channels.push(ch);
    return ch;
  };
  const newClient = (who: string, opts: { tokenGenerator?: TokenGenerator; policies?: [] } = {}): NsmClient => {
    const c = client({
      name: "nsc",
      connectTo: nsmgrUrl,
      tokenGenerator: opts.tokenGenerator ?? gen(id(who)),
      ...(id(who).tls ? { tls: id(who).tls } : {}),
      mechanismPreferences: [mechanisms.noop.mechanism()],
      ...(opts.policies ? { policies: opts.policies } : {}),
      refresh: false,
      heal: false,
      retry: false,
      requestTimeoutMs: 5_000,
    });
    clients.push(c);
    return c;
  };

  beforeEach(async () => {
    lifetime = new AbortController();
    servers = [];
    channels = [];
    clients = [];
    tamper = undefined;
    const serve = async (who: string): Promise<NsmServer> => {
      const s = createServer({ tls: id(who).tls });
      servers.push(s);
      return s;
    };

    const regServer = await serve("registry");
    serveRegistry(
      regServer,
      createRegistryServer({ tokenGenerator: gen(id("registry")), nsStore: createMemoryStore("ns"), nseStore: createMemoryStore("nse") }),
    );
    registryUrl = await regServer.listen("tcp://127.0.0.1:0");

    const tamperer: NetworkServiceElement = {
      name: "tamper",
      request(ctx, req, next) {
        const seg = req.connection?.path?.pathSegments[0];
        if (tamper !== undefined && seg) seg.token = tamper;
        return next.request(ctx, req);
      },
      close: (ctx, conn, next) => next.close(ctx, conn),
    };
    const nsmgrServer = await serve("nsmgr");
    nsmgrUrl = await nsmgrServer.listen("tcp://127.0.0.1:0");
    nsmgr = createNsmgr({
      name: "nsmgr",
      url: nsmgrUrl,
      registryUrl,
      tokenGenerator: gen(id("nsmgr")),
      excludedPrefixes: false,
      additional: [tamperer],
      dialOptions: { tls: id("nsmgr").tls },
    });
    nsmgr.serve(nsmgrServer);

    const fwdServer = await serve("forwarder");
    const fwdUrl = await fwdServer.listen("tcp://127.0.0.1:0");
    fwd = createForwarder({
      name: "forwarder",
      url: fwdUrl,
      nsmgrUrl,
      tokenGenerator: gen(id("forwarder")),
      dialOptions: { tls: id("forwarder").tls },
    });
    fwd.serve(fwdServer);
    await fwd.register();

    counter = newCounter("nse-count");
    ep = endpoint({
      name: "nse",
      tokenGenerator: gen(id("nse")),
      additional: [mechanisms.newServer({ NOOP: passThrough }), counter],
    });
    const epServer = await serve("nse");
    const epUrl = await epServer.listen("tcp://127.0.0.1:0");
    ep.serve(epServer);
    const nsmgrCh = channel(nsmgrUrl, "nse");
    await createRegistryClient("ns", nsmgrCh, { tokenGenerator: gen(id("nse")) }).register(
      CallContext.create(),
      create(NetworkServiceSchema, { name: "ns-1", payload: "ETHERNET" }),
    );
    await createRegistryClient("nse", nsmgrCh, { tokenGenerator: gen(id("nse")), signal: lifetime.signal }).register(
      CallContext.create(),
      create(NetworkServiceEndpointSchema, { name: "nse", url: epUrl, networkServiceNames: ["ns-1"] }),
    );
  });

  afterEach(async () => {
    lifetime.abort();
    await Promise.all(clients.map((c) => c.dispose()));
    await fwd.close();
    nsmgr.close();
    for (const c of channels) c.close();
    await Promise.all(servers.map((s) => s.close({ graceMs: 100 })));
  });

  const aliceConnection = async (): Promise<{ alice: NsmClient; conn: Connection }> => {
    const alice = newClient("alice");
    const conn = await alice.request({ connection: { networkService: "ns-1", labels: { app: "alice" } } });
    expect(conn.path?.pathSegments.map((s) => s.name)).to.deep.equal(["nsc", "nsmgr", "forwarder", "nse"]);
    return { alice, conn };
  };

  describe("expired tokens", () => {
    for (const agoMs of [1_000, 120_000]) {
      it(`the nsmgr refuses a Request whose token expired ${agoMs / 1000} s ago, though its expires metadata lies`, async () => {
        const c = newClient("mallory", { tokenGenerator: expiredGen(id("mallory"), agoMs), policies: [] });
        const err = await rejection(c.request({ connection: { networkService: "ns-1" } }));
        expect(err.code, err.message).to.equal(Code.PermissionDenied);
        expect(err.message).to.contain("authorize: policy tokens_expired denied: token of path segment 0 (nsc)");
        expect(nsmgr.monitor.connections()).to.have.length(0);
        expect(counter.requests).to.equal(0);
      });
    }

    it("the forwarder refuses a forwarded Request whose previous segment's token has expired", async () => {
      tamper = (await expiredGen(id("alice"), 1_000)({ spiffeId: id("nsmgr").spiffeId })).token;
      const alice = newClient("alice");
      const err = await rejection(alice.request({ connection: { networkService: "ns-1" } }));
      expect(err.message).to.contain("policy tokens_expired denied: token of path segment 0 (nsc)");
      expect(fwd.monitor.connections()).to.have.length(0);
      expect(counter.requests).to.equal(0);
    });

    it("Close passes with an expired token, so the owner can still clean up", async () => {
      let expired = false;
      const fresh = gen(id("alice"));
      const stale = expiredGen(id("alice"), 1_000);
      const alice = newClient("alice", { tokenGenerator: (peer) => (expired ? stale(peer) : fresh(peer)) });
      const conn = await alice.request({ connection: { networkService: "ns-1" } });
      expired = true;
      await alice.close(conn);
      expect(nsmgr.monitor.connections()).to.have.length(0);
      expect(counter.closes).to.equal(1);
    });

    it("the registry refuses a registration whose token has expired", async () => {
      const reg = createRegistryClient("nse", channel(registryUrl, "mallory"), {
        tokenGenerator: expiredGen(id("mallory"), 1_000),
        retry: { tryTimeoutMs: 0 },
      });
      const err = await rejection(
        reg.register(CallContext.create(), create(NetworkServiceEndpointSchema, { name: "nse-m", url: "tcp://127.0.0.1:1" })),
      );
      expect(err.code, err.message).to.equal(Code.PermissionDenied);
      expect(err.message).to.contain("tokens_expired");
    });
  });

  describe("monitor", () => {
    const leaked = (res: ConnectionEvent | StatusError, conn: Connection): string[] => {
      if (res instanceof StatusError) return [];
      const aliceIds = new Set(conn.path?.pathSegments.map((s) => s.id));
      return Object.values(res.connections)
        .filter((c) => c.path?.pathSegments.some((s) => aliceIds.has(s.id) || decodeToken(s.token).sub === id("alice").spiffeId))
        .map((c) => c.id);
    };

    it("mallory sees none of alice's connections or tokens, for an empty selector or one naming alice's ids", async () => {
      const { conn } = await aliceConnection();
      const m = channel(nsmgrUrl, "mallory");
      const selectors: MonitorScopeSelector[] = [
        create(MonitorScopeSelectorSchema, {}),
        create(MonitorScopeSelectorSchema, { pathSegments: [{ id: conn.path?.pathSegments[0]?.id ?? "" }] }),
        create(MonitorScopeSelectorSchema, { pathSegments: [{ id: conn.path?.pathSegments[1]?.id ?? "" }] }),
      ];
      for (const sel of selectors) expect(leaked(await firstEvent(m, sel), conn), JSON.stringify(sel)).to.deep.equal([]);
      // Alice herself still sees hers.
      const own = await firstEvent(channel(nsmgrUrl, "alice"), selectors[1] as MonitorScopeSelector);
      expect(leaked(own, conn)).to.have.length(1);
    });
  });

  describe("connection ownership", () => {
    it("mallory can neither refresh alice's connection (new labels) nor close it", async () => {
      const { conn } = await aliceConnection();
      const mallory = newClient("mallory", { policies: [] });
      const copy = { ...conn, labels: { app: "mallory" } };
      const err = await rejection(mallory.request({ connection: copy }));
      expect(err.code, err.message).to.equal(Code.PermissionDenied);
      // Mallory's own client never held the connection, so she closes it with a raw call as her workload.
      const md = tokenMetadata(await gen(id("mallory"))({ spiffeId: id("nsmgr").spiffeId }));
      const raw = createClient(NetworkService, channel(nsmgrUrl, "mallory"));
      const forged = create(ConnectionSchema, conn);
      const seg0 = forged.path?.pathSegments[0];
      if (seg0) seg0.token = md["nsm-client-token"] ?? "";
      if (forged.path) forged.path.index = 0;
      const closeErr = await rejection(raw.close(forged, { metadata: md, timeoutMs: 5_000 }));
      expect(closeErr.code).to.equal(Code.PermissionDenied);
      const held = nsmgr.monitor.connections();
      expect(held).to.have.length(1);
      expect(held[0]?.labels).to.deep.equal({ app: "alice" });
      expect(counter.closes).to.equal(0);
    });
  });

  describe("first segment", () => {
    /** Mallory's raw Request to the nsmgr with `path`, her per-RPC token from `signer` (default: her own). */
    const mallorysRequest = async (pathSegments: { name: string; id: string; token?: string }[], signer = gen(id("mallory"))) => {
      const md = tokenMetadata(await signer({ spiffeId: id("nsmgr").spiffeId }));
      const req = create(NetworkServiceRequestSchema, {
        connection: { id: pathSegments.at(-1)?.id ?? "", networkService: "ns-1", path: { index: pathSegments.length - 1, pathSegments } },
        mechanismPreferences: [mechanisms.noop.mechanism()],
      });
      return rejection(createClient(NetworkService, channel(nsmgrUrl, "mallory")).request(req, { metadata: md, timeoutMs: 5_000 }));
    };
    // Tokens mallory signs with her own key but with alice's SPIFFE ID as `sub`.
    const asAlice: TokenGenerator = (peer) =>
      createTokenGenerator({ ...id("mallory"), spiffeId: id("alice").spiffeId }, { maxTokenLifetimeMs: LIFETIME_MS })(peer);

    it("mallory cannot send a path whose first segment claims alice (she is not a trusted hop)", async () => {
      const claim = (await asAlice({ spiffeId: id("mallory").spiffeId })).token;
      const err = await mallorysRequest([
        { name: "nsc", id: randomUUID(), token: claim },
        { name: "mallory", id: randomUUID() },
      ]);
      expect(err.code, err.message).to.equal(Code.PermissionDenied);
      expect(err.message).to.contain(
        `authorize: policy first_segment_caller denied: path segment 0 (nsc) is not the caller's own: "${id("mallory").spiffeId}" sent 1 segment before its own and is not a trusted hop`,
      );
      expect(nsmgr.monitor.connections()).to.have.length(0);
      expect(counter.requests).to.equal(0);
    });

    it("mallory cannot sign her own segment as alice", async () => {
      const err = await mallorysRequest([{ name: "nsc", id: randomUUID() }], asAlice);
      expect(err.code, err.message).to.equal(Code.PermissionDenied);
      expect(err.message).to.contain(
        `authorize: policy first_segment_caller denied: token of path segment 0 (nsc) names "${id("alice").spiffeId}", not the peer "${id("mallory").spiffeId}"`,
      );
      expect(counter.requests).to.equal(0);
    });
  });

  describe("registry ownership", () => {
    it("mallory cannot take over the endpoint name through a forged registry path", async () => {
      const forgedSub = createTokenGenerator({ ...id("mallory"), spiffeId: id("nse").spiffeId }, { maxTokenLifetimeMs: LIFETIME_MS });
      const forged = (await forgedSub({ spiffeId: id("mallory").spiffeId })).token;
      const reg = createRegistryClient("nse", channel(registryUrl, "mallory"), {
        tokenGenerator: gen(id("mallory")),
        retry: { tryTimeoutMs: 0 },
      });
      const ctx = CallContext.create().with(pathKey, { index: 0, segments: [{ token: forged }] });
      const err = await rejection(
        reg.register(
          ctx,
          create(NetworkServiceEndpointSchema, { name: "nse", url: "tcp://127.0.0.1:6666", networkServiceNames: ["ns-1"] }),
        ),
      );
      expect(err.code, err.message).to.equal(Code.PermissionDenied);
      const find = createRegistryClient("nse", channel(registryUrl, "alice"), { tokenGenerator: gen(id("alice")) });
      const urls: string[] = [];
      const template = create(NetworkServiceEndpointSchema, { name: "nse" });
      for await (const r of find.find(CallContext.create(), { template, watch: false })) urls.push(r.entry.url);
      expect(urls).to.deep.equal([nsmgrUrl]);
    });
  });
});
