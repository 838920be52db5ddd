/**
 * Acceptance (issue 4): the standard client chain talks to the standard endpoint chain over real gRPC, on
 * loopback TCP and on a unix socket, with real ES256 tokens from dev identities (insecure mode).
 */

import { create } from "@bufbuild/protobuf";
import { timestampMs } from "@bufbuild/protobuf/wkt";
import {
  type Connection,
  type ConnectionEvent,
  ConnectionEventType,
  MonitorConnection,
  MonitorScopeSelectorSchema,
  type PathSegment,
} from "@nsm-ts/api/networkservice";
import { MockClock } from "@nsm-ts/base/clock";
import { CallContext } from "@nsm-ts/base/context";
import { createClient, createServer, dial, type NsmServer } from "@nsm-ts/base/grpc";
import { devIdentity, type Identity } from "@nsm-ts/base/identity";
import { createTokenGenerator, decodeToken, verifyToken } from "@nsm-ts/base/token";
import { Tracker, type Transport, tcpTransport, unixTransport } from "@nsm-ts/testing/e2e";
import { type Counter, newCounter } from "@nsm-ts/testing/elements";
import { expect } from "chai";
import { client, type Endpoint, endpoint, type NsmClient } from "../chains/index.js";

const MIN = 60_000;

const expiresMs = (seg: PathSegment | undefined): number => (seg?.expires ? timestampMs(seg.expires) : Number.NaN);
const connectionsOf = (ev: ConnectionEvent | undefined): Connection[] => Object.values(ev?.connections ?? {});
const LIFETIME_MS = 10 * MIN;

for (const makeTransport of [tcpTransport, unixTransport]) {
  describe(`client chain → endpoint chain over gRPC (${makeTransport().name})`, () => {
    let transport: Transport;
    let clock: MockClock;
    let nscId: Identity;
    let nseId: Identity;
    let server: NsmServer;
    let ep: Endpoint;
    let counter: Counter;
    let tracker: Tracker;
    let url: string;
    const clients: NsmClient[] = [];

    before(async () => {
      [nscId, nseId] = await Promise.all([devIdentity("nsc"), devIdentity("nse")]);
    });

    beforeEach(async () => {
      transport = makeTransport();
      clock = new MockClock();
      counter = newCounter("nse-count");
      tracker = new Tracker();
      ep = endpoint({
        name: "nse",
        tokenGenerator: createTokenGenerator(nseId, { maxTokenLifetimeMs: LIFETIME_MS, clock }),
        insecure: true,
        clock,
        additional: [counter, tracker.element],
      });
      server = createServer();
      ep.serve(server);
      url = await server.listen(transport.listenUrl());
    });

    afterEach(async () => {
      await Promise.all(clients.splice(0).map((c) => c.dispose()));
      await server.close({ graceMs: 100 });
      transport.cleanup();
      expect(clock.pending(), "timers left on the mock clock").to.equal(0);
      expect(ep.monitor.connections(), "connections left at the endpoint").to.have.length(0);
    });

    function newClient(opts: { refresh?: boolean; heal?: boolean } = {}): NsmClient {
      const c = client({
        name: "nsc",
        connectTo: url,
        tokenGenerator: createTokenGenerator(nscId, { maxTokenLifetimeMs: LIFETIME_MS, clock }),
        insecure: true,
        clock,
        ...opts,
      });
      clients.push(c);
      return c;
    }

    const request = { connection: { networkService: "ns-1" } };

    it("Request returns two path segments whose tokens verify and chain; Close reaches the endpoint once", async () => {
      const nsc = newClient();
      const conn = await nsc.request(request);
      const segs = conn.path?.pathSegments ?? [];
      expect(segs.map((s) => s.name)).to.deep.equal(["nsc", "nse"]);
      expect(conn.path?.index).to.equal(0);
      expect(conn.id).to.equal(segs[0]?.id);
      // Each hop's token is signed by its identity and names it as `sub`; `expires` matches `exp`.
      for (const [i, id] of [nscId, nseId].entries()) {
        const seg = segs[i];
        expect(seg?.token, `segment ${i} token`).to.be.a("string").and.not.equal("");
        expect(await verifyToken(seg?.token ?? "", id.publicKey, { now: clock.now() }), `segment ${i} signature`).to.equal(true);
        const claims = decodeToken(seg?.token ?? "");
        expect(claims.sub).to.equal(id.spiffeId);
        expect(claims.exp).to.equal(expiresMs(seg) / 1000);
        expect(claims.exp).to.equal(Math.floor((clock.now() + LIFETIME_MS) / 1000));
      }
      // Chained: where a token names its audience, it is the next hop's identity (dev mode has no TLS
      // peer, so audiences are absent here; the policy test covers the addressed case).
      for (let i = 0; i + 1 < segs.length; i++) {
        const aud = decodeToken(segs[i]?.token ?? "").aud;
        if (aud.length > 0) expect(aud).to.include(decodeToken(segs[i + 1]?.token ?? "").sub);
      }
      // A wrong key does not verify.
      expect(await verifyToken(segs[1]?.token ?? "", nscId.publicKey)).to.equal(false);
      expect(counter.requests).to.equal(1);
      expect(ep.monitor.connections()).to.have.length(1);

      await nsc.close(conn);
      await nsc.close(conn);
      expect(counter.closes).to.equal(1);
      expect(ep.monitor.connections()).to.have.length(0);
    });

    it("refreshes before the tokens expire, on the mock clock", async () => {
      const nsc = newClient({ heal: false });
      const conn = await nsc.request(request);
      const expiresAt = Math.min(...(conn.path?.pathSegments ?? []).map(expiresMs));
      expect(counter.requests).to.equal(1);
      // Two segments, client at index 0: refresh at 0.2 × 10 min = 2 min, well before the expiry.
      const refreshed = tracker.next("request");
      await clock.advance(2 * MIN);
      await refreshed;
      expect(clock.now()).to.be.lessThan(expiresAt);
      expect(counter.requests).to.equal(2);
      expect(counter.uniqueRequests).to.equal(1);
      // And again from the renewed tokens: the connection outlives its first tokens.
      for (let i = 0; i < 6; i++) {
        const again = tracker.next("request");
        await clock.advance(2 * MIN);
        await again;
      }
      expect(clock.now()).to.be.greaterThan(expiresAt);
      expect(counter.requests).to.equal(8);
      expect(counter.closes).to.equal(0);
      await nsc.close(conn);
      expect(counter.closes).to.equal(1);
    });

    it("a client that stops refreshing is closed by the endpoint's timeout", async () => {
      const nsc = newClient({ refresh: false, heal: false });
      await nsc.request(request);
      // Watch the endpoint's monitor in-process: the monitor element drops the connection after the Close has
      // passed the tracker, so wait for its DELETE event instead of checking right after the Close.
      const watching = new AbortController();
      const events = ep.monitor
        .monitorConnections(CallContext.create({ signal: watching.signal }), create(MonitorScopeSelectorSchema))
        [Symbol.asyncIterator]();
      try {
        expect((await events.next()).value?.type).to.equal(ConnectionEventType.INITIAL_STATE_TRANSFER);
        await clock.advance(LIFETIME_MS - MIN);
        expect(counter.closes).to.equal(0);
        const closed = tracker.next("close");
        await clock.advance(MIN);
        await closed;
        expect(counter.closes).to.equal(1);
        let ev = await events.next();
        while (!ev.done && ev.value.type !== ConnectionEventType.DELETE) ev = await events.next();
        expect(ev.value?.type).to.equal(ConnectionEventType.DELETE);
        expect(ep.monitor.connections()).to.have.length(0);
      } finally {
        watching.abort();
        await events.return?.();
      }
    });

    it("MonitorConnections sees INITIAL_STATE_TRANSFER, UPDATE then DELETE", async () => {
      const channel = dial(url);
      const abort = new AbortController();
      try {
        const events = createClient(MonitorConnection, channel).monitorConnections({}, { signal: abort.signal })[Symbol.asyncIterator]();
        const initial = await events.next();
        expect(initial.value?.type).to.equal(ConnectionEventType.INITIAL_STATE_TRANSFER);
        expect(connectionsOf(initial.value)).to.have.length(0);

        const nsc = newClient({ heal: false });
        const conn: Connection = await nsc.request(request);
        const update = await events.next();
        expect(update.value?.type).to.equal(ConnectionEventType.UPDATE);
        const published = connectionsOf(update.value);
        expect(published).to.have.length(1);
        expect(published[0]?.path?.pathSegments[0]?.id).to.equal(conn.id);
        expect(published[0]?.path?.index).to.equal(1);

        await nsc.close(conn);
        const del = await events.next();
        expect(del.value?.type).to.equal(ConnectionEventType.DELETE);
        expect(connectionsOf(del.value)[0]?.path?.pathSegments[0]?.id).to.equal(conn.id);
      } finally {
        abort.abort();
        channel.close();
      }
    });
  });
}
