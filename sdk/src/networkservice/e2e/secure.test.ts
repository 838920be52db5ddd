/**
 * Acceptance of the secure mode (docs/wire-compatibility.md#insecure-dev-mode, #token-metadata, #token-format): the
 * standard client and endpoint chains over real gRPC with mTLS (loopback TCP and a unix socket), identities loaded
 * from X.509 certificates with SPIFFE URI SANs, and the default policies enforced — tokens addressed hop to hop,
 * signatures checked against the TLS certificates, monitor streams limited to their owners.
 */

import { type ConnectionEvent, ConnectionEventType, MonitorConnection, type PathSegment, State } from "@nsm-ts/api/networkservice";
import { type Channel, createClient, createServer, dial, type NsmServer } from "@nsm-ts/base/grpc";
import { ephemeralIdentity, type Identity, loadIdentity } from "@nsm-ts/base/identity";
import { Code, StatusError } from "@nsm-ts/base/status";
import { createTokenGenerator, decodeToken, type TokenGenerator, verifyToken } from "@nsm-ts/base/token";
import { SubscriptionProbe, Tracker, type Transport, tcpTransport, unixTransport } from "@nsm-ts/testing/e2e";
import { type Counter, newCounter } from "@nsm-ts/testing/elements";
import { TestPki } from "@nsm-ts/testing/pki";
import { expect } from "chai";
import { client, type Endpoint, endpoint, type NsmClient } from "../chains/index.js";
import * as authorize from "../common/authorize/index.js";
import { serveNetworkService } from "../core/index.js";

const LIFETIME_MS = 10 * 60_000;
const TD = "spiffe://secure.nsm-ts";

const gen = (id: Identity): TokenGenerator => createTokenGenerator(id, { maxTokenLifetimeMs: LIFETIME_MS });

async function rejection(p: Promise<unknown>): Promise<StatusError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err, "expected the call to fail").to.be.instanceOf(StatusError);
  return err as StatusError;
}

/** Checks that consecutive tokens chain (aud → sub) and each verifies with its signer's certificate. */
async function expectVerifiedChain(segs: PathSegment[], ids: Identity[]): Promise<void> {
  expect(segs.map((s) => decodeToken(s.token).sub)).to.deep.equal(ids.map((i) => i.spiffeId));
  for (const [i, id] of ids.entries()) {
    const cert = id.certificate;
    if (!cert) throw new Error("identity without a certificate");
    expect(await verifyToken(segs[i]?.token ?? "", cert.publicKey), `segment ${i} signed by ${id.spiffeId}`).to.equal(true);
    const next = ids[i + 1];
    if (next) expect(decodeToken(segs[i]?.token ?? "").aud, `segment ${i} aud`).to.deep.equal([next.spiffeId]);
  }
}

describe("secure mode: mTLS and enforced token policies over gRPC", () => {
  let pki: TestPki;
  let otherPki: TestPki;
  let nscId: Identity;
  let nseId: Identity;
  let ptId: Identity;
  let malloryId: Identity;
  let intruderId: Identity;

  before(async () => {
    pki = new TestPki("secure-ca");
    otherPki = new TestPki("other-ca");
    const load = async (p: TestPki, name: string): Promise<Identity> =>
      loadIdentity({ ...p.leaf(name, { san: `URI:${TD}/${name}` }), caFile: p.caFile });
    [nscId, nseId, ptId, malloryId] = (await Promise.all(["nsc", "nse", "pt", "mallory"].map((n) => load(pki, n)))) as [
      Identity,
      Identity,
      Identity,
      Identity,
    ];
    intruderId = await load(otherPki, "intruder");
  });
  after(() => {
    pki.remove();
    otherPki.remove();
  });

  for (const makeTransport of [tcpTransport, unixTransport]) {
    describe(`over ${makeTransport().name}`, () => {
      let transport: Transport;
      let server: NsmServer;
      let ep: Endpoint;
      let counter: Counter;
      let url: string;
      const clients: NsmClient[] = [];
      const channels: Channel[] = [];
      const servers: NsmServer[] = [];

      beforeEach(async () => {
        transport = makeTransport();
        counter = newCounter("nse-count");
        // The passthrough endpoint "pt" forwards its callers' paths, so the endpoint trusts it as a hop.
        ep = endpoint({ name: "nse", tokenGenerator: gen(nseId), additional: [counter], trustedHops: (id) => id === ptId.spiffeId });
        server = createServer({ tls: nseId.tls });
        servers.push(server);
        ep.serve(server);
        url = await server.listen(transport.listenUrl());
      });

      afterEach(async () => {
        await Promise.all(clients.splice(0).map((c) => c.dispose()));
        for (const c of channels.splice(0)) c.close();
        await Promise.all(servers.splice(0).map((s) => s.close({ graceMs: 100 })));
        transport.cleanup();
        expect(ep.monitor.connections(), "connections left at the endpoint").to.have.length(0);
      });

      function newClient(id: Identity, opts: { connectTo?: string; tokenGenerator?: TokenGenerator } = {}): NsmClient {
        const c = client({
          name: "nsc",
          connectTo: opts.connectTo ?? url,
          tokenGenerator: opts.tokenGenerator ?? gen(id),
          ...(id.tls ? { tls: id.tls } : {}),
          refresh: false,
          heal: false,
          retry: false,
          requestTimeoutMs: 5_000,
        });
        clients.push(c);
        return c;
      }

      it("Request succeeds with two segments whose tokens chain aud → sub and verify against the certificates", async () => {
        const nsc = newClient(nscId);
        const conn = await nsc.request({ connection: { networkService: "ns-1" } });
        const segs = conn.path?.pathSegments ?? [];
        expect(segs.map((s) => s.name)).to.deep.equal(["nsc", "nse"]);
        await expectVerifiedChain(segs, [nscId, nseId]);
        // The endpoint's token is addressed back to its caller.
        expect(decodeToken(segs[1]?.token ?? "").aud).to.deep.equal([nscId.spiffeId]);
        expect(counter.requests).to.equal(1);
        await nsc.close(conn);
        expect(counter.closes).to.equal(1);
      });

      it("rejects a client whose certificate comes from another CA at the TLS layer", async () => {
        // The intruder trusts our CA for the server, but its own certificate is not from it.
        const c = client({
          name: "nsc",
          connectTo: url,
          tokenGenerator: gen(intruderId),
          tls: { ...(intruderId.tls ?? { certFile: "", keyFile: "" }), caFile: pki.caFile },
          refresh: false,
          heal: false,
          retry: false,
          requestTimeoutMs: 3_000,
        });
        clients.push(c);
        const err = await rejection(c.request({ connection: { networkService: "ns-1" } }));
        expect([Code.Unavailable, Code.DeadlineExceeded]).to.include(err.code);
        expect(counter.requests).to.equal(0);
      });

      it("refuses a forged token (signed by another key) with PermissionDenied naming the policy", async () => {
        const impostorKey = await ephemeralIdentity(nscId.spiffeId);
        // Same SPIFFE ID and TLS certificate as the real client, but tokens signed by a key nobody certified.
        const forged = createTokenGenerator(
          { ...nscId, privateKey: impostorKey.privateKey, publicKey: impostorKey.publicKey },
          { maxTokenLifetimeMs: LIFETIME_MS },
        );
        const nsc = newClient(nscId, { tokenGenerator: forged });
        const err = await rejection(nsc.request({ connection: { networkService: "ns-1" } }));
        expect(err.code).to.equal(Code.PermissionDenied);
        expect(err.message).to.contain("policy prev_token_signed denied");
        expect(counter.requests).to.equal(0);
      });

      it("lets a client monitor its own connection and refuses another identity's selector for it", async () => {
        const nsc = newClient(nscId);
        const conn = await nsc.request({ connection: { networkService: "ns-1" } });
        const selector = { pathSegments: [{ id: conn.id }] };

        const own = dial(url, { tls: nscId.tls });
        channels.push(own);
        let first: ConnectionEvent | undefined;
        for await (const ev of createClient(MonitorConnection, own).monitorConnections(selector, { timeoutMs: 5_000 })) {
          first = ev;
          break;
        }
        expect(first?.type).to.equal(ConnectionEventType.INITIAL_STATE_TRANSFER);
        expect(Object.values(first?.connections ?? {}).map((c) => c.path?.pathSegments[0]?.id)).to.deep.equal([conn.id]);

        const other = dial(url, { tls: malloryId.tls });
        channels.push(other);
        const stream = createClient(MonitorConnection, other).monitorConnections(selector, { timeoutMs: 5_000 });
        const err = await rejection(
          (async () => {
            for await (const _ of stream) return;
          })(),
        );
        expect(err.code).to.equal(Code.PermissionDenied);
        expect(err.message).to.contain("policy service_connection denied");
        await nsc.close(conn);
      });

      it("heal watches the endpoint under the monitor policy and re-requests over mTLS when the connection goes down", async () => {
        // The endpoint as `register` wires it, with a probe between the transport and the monitor authorize.
        const tracker = new Tracker();
        const healEp = endpoint({ name: "nse", tokenGenerator: gen(nseId), additional: [tracker.element] });
        const probe = new SubscriptionProbe(authorize.newMonitorServer(healEp.monitor));
        const healServer = createServer({ tls: nseId.tls });
        servers.push(healServer);
        serveNetworkService(healServer, healEp.element, probe);
        const healUrl = await healServer.listen(transport.listenUrl().replace("nse.sock", "heal.sock"));

        const c = client({
          name: "nsc",
          connectTo: healUrl,
          tokenGenerator: gen(nscId),
          ...(nscId.tls ? { tls: nscId.tls } : {}),
          refresh: false,
          retry: false,
        });
        clients.push(c);
        const watching = probe.next();
        const conn = await c.request({ connection: { networkService: "ns-1" } });
        await watching; // the watch passed service_connection: a denial ends the stream before any event
        const atEp = healEp.monitor.connections()[0];
        const rewatched = probe.next();
        const healed = tracker.next("request");
        expect(healEp.monitor.setState(atEp?.id ?? "", State.DOWN)).to.equal(true);
        await healed;
        await rewatched;
        expect(healEp.monitor.get(atEp?.id ?? "")?.state).to.equal(State.UP);
        await c.close(conn);
        expect(healEp.monitor.connections()).to.have.length(0);
      });

      it("chains three tokens through a passthrough endpoint (client → endpoint+client → endpoint)", async () => {
        const ptServer = createServer({ tls: ptId.tls });
        servers.push(ptServer);
        const next = client({
          name: "pt",
          connectTo: url,
          tokenGenerator: gen(ptId),
          ...(ptId.tls ? { tls: ptId.tls } : {}),
          refresh: false,
          heal: false,
          retry: false,
        });
        clients.push(next);
        const pt = endpoint({ name: "pt", tokenGenerator: gen(ptId), additional: [next.element] });
        pt.serve(ptServer);
        const ptUrl = await ptServer.listen(transport.listenUrl().replace("nse.sock", "pt.sock"));

        const nsc = newClient(nscId, { connectTo: ptUrl });
        const conn = await nsc.request({ connection: { networkService: "ns-1" } });
        const segs = conn.path?.pathSegments ?? [];
        expect(segs.map((s) => s.name)).to.deep.equal(["nsc", "pt", "nse"]);
        await expectVerifiedChain(segs, [nscId, ptId, nseId]);
        expect(counter.requests).to.equal(1);
        await nsc.close(conn);
        expect(counter.closes).to.equal(1);
        expect(pt.monitor.connections()).to.have.length(0);
      });
    });
  }
});
