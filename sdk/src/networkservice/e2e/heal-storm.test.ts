/**
 * Acceptance (issue 18): monitoring must not take the HTTP/2 session down. Node's HTTP/2 server answers a burst of
 * more than about 1,000 stream resets on one session with GOAWAY (the rapid-reset guard), which kills every call
 * on that session. Heal used to open one MonitorConnections stream per connection, so closing ~1,200 connections
 * at once reset ~1,200 streams and the session died: Closes failed and every other connection healed. Now the
 * watches of one client share one stream per next hop, and the burst of Closes leaves the session alone.
 */

import { setMaxListeners } from "node:events";
import { create } from "@bufbuild/protobuf";
import { type ConnectionEvent, MonitorConnection, type MonitorScopeSelector, MonitorScopeSelectorSchema } from "@nsm-ts/api/networkservice";
import { MockClock } from "@nsm-ts/base/clock";
import type { CallContext } from "@nsm-ts/base/context";
import { ChannelPool } from "@nsm-ts/base/dialer";
import { createClient, createServer, type NsmServer } from "@nsm-ts/base/grpc";
import { devIdentity, type Identity } from "@nsm-ts/base/identity";
import { createTokenGenerator } from "@nsm-ts/base/token";
import { tcpTransport } from "@nsm-ts/testing/e2e";
import { expect } from "chai";
import { client, type Endpoint, endpoint, type NsmClient } from "../chains/index.js";
import { serveNetworkService } from "../core/serve.js";
import type { MonitorConnectionServer } from "../core/types.js";

const LIFETIME_MS = 10 * 60_000;
/** Above the guard's burst of 1,000 resets (900 pass, 1,100 trip it on Node 20). */
const CONNECTIONS = 1_200;

/** Counts the MonitorConnections streams the server holds open, and which connections the selective ones have shown. */
class CountingMonitor implements MonitorConnectionServer {
  open = 0;
  opened = 0;
  /** Connections that a stream with a non-empty selector (a heal watch) has sent. */
  readonly shown = new Set<string>();
  private waiters: Array<() => boolean> = [];
  constructor(private readonly inner: MonitorConnectionServer) {}

  /** Resolves once every connection of `ids` has been sent on a heal watch's stream. */
  showing(ids: string[]): Promise<void> {
    return new Promise((resolve) => {
      const check = (): boolean => {
        if (!ids.every((id) => this.shown.has(id))) return false;
        resolve();
        return true;
      };
      if (!check()) this.waiters.push(check);
    });
  }

  monitorConnections(ctx: CallContext, selector: MonitorScopeSelector): AsyncIterable<ConnectionEvent> {
    const events = this.inner.monitorConnections(ctx, selector);
    const self = this;
    const selective = selector.pathSegments.length > 0;
    return (async function* () {
      self.open++;
      self.opened++;
      try {
        for await (const ev of events) {
          yield ev;
          if (!selective) continue;
          for (const c of Object.values(ev.connections)) self.shown.add(c.id);
          self.waiters = self.waiters.filter((done) => !done());
        }
      } finally {
        self.open--;
      }
    })();
  }
}

/** Resolves once `cond` holds, checking on every turn of the event loop (the state comes from I/O). */
async function waitFor(cond: () => boolean): Promise<void> {
  while (!cond()) await new Promise((r) => setImmediate(r));
}

describe("heal over gRPC: a burst of closes does not trip the HTTP/2 rapid-reset guard", function () {
  this.timeout(180_000);
  let nscId: Identity;
  let nseId: Identity;
  let server: NsmServer;
  let ep: Endpoint;
  let monitor: CountingMonitor;
  let pool: ChannelPool;
  let nsc: NsmClient;
  let url: string;
  const epClock = new MockClock(Date.now());
  const transport = tcpTransport();

  before(async () => {
    [nscId, nseId] = await Promise.all([devIdentity("nsc"), devIdentity("nse")]);
    ep = endpoint({
      name: "nse",
      tokenGenerator: createTokenGenerator(nseId, { maxTokenLifetimeMs: LIFETIME_MS, clock: epClock }),
      insecure: true,
      clock: epClock,
    });
    monitor = new CountingMonitor(ep.monitor);
    server = createServer();
    serveNetworkService(server, ep.element, monitor, { clock: epClock });
    url = await server.listen(transport.listenUrl());
  });

  after(async () => {
    await server.close({ graceMs: 100 });
    transport.cleanup();
    expect(epClock.pending(), "endpoint timers left").to.equal(0);
  });

  afterEach(async () => {
    await nsc?.dispose();
    pool?.closeAll();
  });

  it(`closes ${CONNECTIONS} watched connections at once; the session, its other streams and the other connections live on`, async function () {
    const healEvents: string[] = [];
    pool = new ChannelPool({ grpcOptions: { "grpc.initial_reconnect_backoff_ms": 100, "grpc.max_reconnect_backoff_ms": 1000 } });
    nsc = client({
      name: "nsc",
      connectTo: url,
      pool,
      tokenGenerator: createTokenGenerator(nscId, { maxTokenLifetimeMs: LIFETIME_MS }),
      insecure: true,
      heal: { onEvent: (e) => healEvents.push(e) },
    });
    const canary = await nsc.request({ connection: { networkService: "ns-canary" } });

    // Another stream on the same HTTP/2 session: an empty-selector watch, as `cmd-nsc watch connections` runs.
    const watcher = new AbortController();
    const seen: ConnectionEvent[] = [];
    const channel = pool.acquire(url);
    const watched = (async () => {
      try {
        for await (const ev of createClient(MonitorConnection, channel).monitorConnections(create(MonitorScopeSelectorSchema), {
          signal: watcher.signal,
        })) {
          seen.push(ev);
        }
        return "ended";
      } catch (err) {
        return watcher.signal.aborted ? "stopped" : `failed: ${err instanceof Error ? err.message : String(err)}`;
      }
    })();

    const t0 = performance.now();
    const conns = await Promise.all(
      Array.from({ length: CONNECTIONS }, async (_, i) => {
        // Spread the Requests a little so the endpoint is not asked for all of them in one tick.
        await new Promise((r) => setTimeout(r, i % 50));
        return nsc.request({ connection: { networkService: "ns-1" } });
      }),
    );
    const tRequested = performance.now();
    expect(ep.monitor.connections()).to.have.length(CONNECTIONS + 1);
    // Every connection is watched before the burst.
    await monitor.showing(ep.monitor.connections().map((c) => c.id));
    const tWatched = performance.now();

    // The burst: every watched connection closes at once (a client shutting down, a heal storm ending watches).
    const closes = await Promise.allSettled(conns.map((c) => nsc.close(c)));
    const tClosed = performance.now();
    const failed = closes.filter((r) => r.status === "rejected");
    expect(failed.map((r) => String((r as PromiseRejectedResult).reason)).slice(0, 3), "failed Closes").to.deep.equal([]);
    expect(ep.monitor.connections()).to.have.length(1);

    // The session lives: a new Request works, the canary was never healed, the other stream still delivers events.
    const after = await nsc.request({ connection: { networkService: "ns-after" } }, { timeoutMs: 5_000 });
    await nsc.close(after);
    expect(healEvents, "heal events").to.deep.equal([]);
    expect(nsc.status(canary.id)?.state).to.equal("CONNECTED");
    watcher.abort();
    expect(await watched).to.equal("stopped");
    expect(seen.length).to.be.greaterThan(1);
    pool.release(url);
    await nsc.close(canary);
    // One shared stream per next hop served every watch (plus the empty-selector watch above).
    expect(monitor.opened, "monitor streams opened").to.be.lessThan(10);
    this.test!.title +=
      ` (${CONNECTIONS} Requests ${(tRequested - t0).toFixed(0)} ms, watched ${(tWatched - tRequested).toFixed(0)} ms, Closes ${(tClosed - tWatched).toFixed(0)} ms)`;
  });

  it("rides out a GOAWAY anyway: the shared stream is reopened on a new session and nothing heals", async () => {
    const healEvents: string[] = [];
    pool = new ChannelPool({ grpcOptions: { "grpc.initial_reconnect_backoff_ms": 100, "grpc.max_reconnect_backoff_ms": 1000 } });
    nsc = client({
      name: "nsc",
      connectTo: url,
      pool,
      tokenGenerator: createTokenGenerator(nscId, { maxTokenLifetimeMs: LIFETIME_MS }),
      insecure: true,
      heal: { onEvent: (e) => healEvents.push(e) },
    });
    const conns = await Promise.all(Array.from({ length: 20 }, () => nsc.request({ connection: { networkService: "ns-1" } })));
    await monitor.showing(ep.monitor.connections().map((c) => c.id));
    const openedBefore = monitor.opened;

    // Someone else on the session trips the guard: 1,100 streams (selecting nothing) cancelled at once.
    const channel = pool.acquire(url);
    const burst = new AbortController();
    setMaxListeners(2_000, burst.signal);
    let received = 0;
    const nothing = create(MonitorScopeSelectorSchema, { pathSegments: [{ id: "no-such-connection" }] });
    const streams = Array.from({ length: 1_100 }, async () => {
      try {
        for await (const _ of createClient(MonitorConnection, channel).monitorConnections(nothing, { signal: burst.signal })) received++;
      } catch {
        // cancelled, or cut by the GOAWAY
      }
    });
    await waitFor(() => monitor.open >= 1_100);
    burst.abort();
    await Promise.all(streams);
    pool.release(url);
    expect(received, "state transfers of the burst").to.be.at.most(1_100);

    // The shared stream broke with the session and was opened again; its state transfer still holds every
    // connection, so no watch healed, and Requests and Closes work on the new session.
    await waitFor(() => monitor.opened > openedBefore + 1_100);
    const after = await nsc.request({ connection: { networkService: "ns-after" } }, { timeoutMs: 5_000 });
    await Promise.all([...conns, after].map((c) => nsc.close(c)));
    expect(healEvents, "heal events").to.deep.equal([]);
    expect(ep.monitor.connections()).to.have.length(0);
  });
});
