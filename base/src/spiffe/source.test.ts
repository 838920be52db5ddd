/**
 * The Workload API source against a test Workload API on a unix socket: the first X.509-SVID becomes the identity,
 * rotation replaces it in place for new TLS connections (both directions) and for token signing, a failed stream is
 * reopened after a capped backoff on the mock clock, and a missing first SVID fails at the start deadline naming
 * SPIFFE_ENDPOINT_SOCKET.
 */
import { once } from "node:events";
import { PassThrough } from "node:stream";
import * as grpc from "@grpc/grpc-js";
import { type HealthCheckResponse, HealthCheckResponse_ServingStatus } from "@nsm-ts/api/health";
import { NetworkService } from "@nsm-ts/api/networkservice";
import { SpiffeWorkloadAPI } from "@nsm-ts/api/spiffe";
import { TestPki } from "@nsm-ts/testing/pki";
import { TestWorkloadApi } from "@nsm-ts/testing/spiffe";
import { expect } from "chai";
import { MockClock } from "../clock/index.js";
import { type Channel, createClient, createServer, dial, healthService, type NsmServer, type TlsConfig } from "../grpc/index.js";
import { createLogger } from "../log/index.js";
import { Code, StatusError } from "../status/index.js";
import { createTokenGenerator, verifyToken } from "../token/index.js";
import { createX509Source, type X509Source } from "./index.js";

const ID = "spiffe://test.com/workload";

/** Resolves with the next TLS material the source pushes (a rotation or bundle update). */
function nextUpdate(source: X509Source): Promise<void> {
  return new Promise((resolve) => {
    const off = source.tls.subscribe(() => {
      off();
      resolve();
    });
  });
}

describe("spiffe: Workload API X.509 source", function () {
  this.timeout(20_000);
  let pki: TestPki;
  let api: TestWorkloadApi;
  let clock: MockClock;
  const sources: X509Source[] = [];
  const servers: NsmServer[] = [];
  const channels: Channel[] = [];

  beforeEach(async () => {
    pki = new TestPki("spire-ca");
    api = await TestWorkloadApi.start(pki, { spiffeId: ID, chained: true });
    clock = new MockClock(Date.now());
  });
  afterEach(async () => {
    for (const c of channels.splice(0)) c.close();
    await Promise.all(servers.splice(0).map((s) => s.close({ graceMs: 0 })));
    await Promise.all(sources.splice(0).map((s) => s.close()));
    await api.close();
    pki.remove();
    expect(clock.pending(), "timers left behind").to.equal(0);
  });

  async function start(opts: { retryMaxMs?: number } = {}): Promise<X509Source> {
    const s = await createX509Source(api.url, { clock, retryInitialMs: 1000, ...opts });
    sources.push(s);
    return s;
  }

  /** An mTLS server whose handler answers with the serial of the client's certificate. */
  async function echoSerialServer(tls: TlsConfig): Promise<{ url: string; server: NsmServer }> {
    const server = createServer({ tls });
    servers.push(server);
    server.addService(NetworkService, {
      request: async (_req, ctx) => ({ id: ctx.peerCertificate?.serialNumber ?? "none" }),
      close: async () => ({}),
    });
    return { url: await server.listen("tcp://127.0.0.1:0"), server };
  }

  /** A health Watch stream on `ch`, past its first (SERVING) message. */
  async function healthWatch(ch: Channel): Promise<AsyncIterator<HealthCheckResponse>> {
    const it = createClient(healthService, ch).watch({ service: "" })[Symbol.asyncIterator]();
    expect((await it.next()).value?.status).to.equal(HealthCheckResponse_ServingStatus.SERVING);
    return it;
  }

  /** Resolves when the channel's connection leaves READY (here: the server's GOAWAY). */
  function leavesReady(ch: Channel): Promise<void> {
    return new Promise((resolve, reject) =>
      ch.grpcClient
        .getChannel()
        .watchConnectivityState(grpc.connectivityState.READY, Date.now() + 10_000, (err) => (err ? reject(err) : resolve())),
    );
  }

  function channelTo(url: string, tls: TlsConfig | undefined): Channel {
    // Own subchannels per channel, so each dial is a new TLS connection.
    const ch = dial(url, { ...(tls === undefined ? {} : { tls }), grpcOptions: { "grpc.use_local_subchannel_pool": 1 } });
    channels.push(ch);
    return ch;
  }

  it("turns the first X.509-SVID into the identity: SPIFFE ID, ES256 key, chain and trust bundle", async () => {
    const source = await start();
    const id = source.identity;
    expect(id.spiffeId).to.equal(ID);
    expect(id.insecure).to.equal(false);
    expect(id.certificate?.serialNumber).to.equal(api.current().serial);
    expect(id.notAfter?.getTime()).to.equal(new Date(api.current().certificate.validTo).getTime());
    const material = source.tls.current();
    expect(material.certChainPem.match(/BEGIN CERTIFICATE/g)).to.have.length(2); // leaf + intermediate
    expect(material.caPem.match(/BEGIN CERTIFICATE/g)).to.have.length(1);
    expect(id.tls).to.equal(source.tls);
    const token = await createTokenGenerator(id, { maxTokenLifetimeMs: 60_000 })();
    expect(await verifyToken(token.token, api.current().certificate)).to.equal(true);
  });

  it("rotation: new calls move to connections with the new certificate both ways, calls in progress finish, tokens use the new key", async () => {
    const source = await start();
    const tokens = createTokenGenerator(source.identity, { maxTokenLifetimeMs: 60_000 });
    const first = api.current();
    // Our server on the source; a peer dials it with a certificate of the same trust domain.
    const ours = await echoSerialServer(source.tls);
    const peer = pki.leaf("peer", { san: "URI:spiffe://test.com/peer" });
    const inbound = channelTo(ours.url, { ...peer, caFile: pki.caFile });
    await inbound.ready(Date.now() + 5000);
    expect(inbound.peerCertificate()?.serialNumber).to.equal(first.serial);
    const inboundWatch = await healthWatch(inbound);
    // Our channel on the source, to a server with certificate files.
    const theirs = await echoSerialServer({ ...pki.leaf("file-server", { san: "URI:spiffe://test.com/fs" }), caFile: pki.caFile });
    const outbound = channelTo(theirs.url, source.tls);
    const out = createClient(NetworkService, outbound);
    expect((await out.request({})).id).to.equal(first.serial);
    const outboundWatch = await healthWatch(outbound);

    const goaway = leavesReady(inbound);
    const updated = nextUpdate(source);
    const second = api.rotate();
    await updated;
    expect(second.serial).to.not.equal(first.serial);
    expect(source.identity.certificate?.serialNumber).to.equal(second.serial);
    // Our channel: the next call runs on a new connection presenting the new certificate.
    expect((await out.request({})).id, "a new call from our channel").to.equal(second.serial);
    // Our server sent GOAWAY: the peer's next call reconnects and sees the new certificate.
    await goaway;
    await createClient(NetworkService, inbound).request({});
    expect(inbound.peerCertificate()?.serialNumber, "the peer's next connection").to.equal(second.serial);
    // Streams opened before the rotation were not cut, in either direction.
    ours.server.health.set("", "NOT_SERVING");
    expect((await inboundWatch.next()).value?.status).to.equal(HealthCheckResponse_ServingStatus.NOT_SERVING);
    theirs.server.health.set("", "NOT_SERVING");
    expect((await outboundWatch.next()).value?.status).to.equal(HealthCheckResponse_ServingStatus.NOT_SERVING);
    await inboundWatch.return?.();
    await outboundWatch.return?.();

    const token = await tokens();
    expect(await verifyToken(token.token, second.certificate)).to.equal(true);
    expect(await verifyToken(token.token, first.certificate)).to.equal(false);
  });

  it("the test Workload API refuses a call without the workload.spiffe.io header (InvalidArgument)", async () => {
    const client = createClient(SpiffeWorkloadAPI, channelTo(api.url, undefined));
    const err = await (async () => {
      for await (const _ of client.fetchX509SVID({})) return undefined;
      return undefined;
    })().catch((e: unknown) => e);
    expect(err).to.be.instanceOf(StatusError);
    expect((err as StatusError).code).to.equal(Code.InvalidArgument);
    expect(api.refused).to.equal(1);
    // Our source sends it: its stream is accepted.
    await start();
    expect(api.fetches).to.equal(1);
    expect(api.refused).to.equal(1);
  });

  it("server restart: the stream is reopened after a capped backoff on the clock and the next SVID arrives", async () => {
    const source = await start({ retryMaxMs: 3000 });
    const first = api.current();
    await api.stop();
    const delays: number[] = [];
    for (let i = 0; i < 4; i++) {
      await clock.untilPending(1);
      const at = clock.nextAt() as number;
      delays.push(at - clock.now());
      await clock.set(at); // the attempt finds no server and arms the next wait
    }
    expect(delays).to.deep.equal([1000, 2000, 3000, 3000]);
    expect(source.identity.certificate?.serialNumber).to.equal(first.serial);

    await api.restart();
    const second = api.rotate(); // issued while no stream is open: the reopened stream must deliver it
    const updated = nextUpdate(source);
    await clock.untilPending(1);
    await clock.set(clock.nextAt() as number);
    await updated;
    expect(api.fetches).to.equal(2);
    expect(source.identity.certificate?.serialNumber).to.equal(second.serial);
  });

  it("no X.509-SVID within the start deadline: DeadlineExceeded naming SPIFFE_ENDPOINT_SOCKET", async () => {
    const url = `unix://${pki.dir}/no-agent.sock`;
    const started = createX509Source(url, { clock, startTimeoutMs: 5000 }).then(
      () => expect.fail("started without an agent"),
      (e: unknown) => e,
    );
    await clock.advance(5000);
    const err = (await started) as StatusError;
    expect(err.code).to.equal(Code.DeadlineExceeded);
    expect(err.message).to.contain(`SPIFFE_ENDPOINT_SOCKET=${url}`);
    expect(err.message).to.contain("within 5000 ms");
  });

  it("an unusable update is logged and refused; the identity stays until a good one arrives", async () => {
    const lines = new PassThrough({ encoding: "utf8" });
    const source = await createX509Source(api.url, { clock, log: createLogger({ level: "info", destination: lines }) });
    sources.push(source);
    const first = api.current();
    const refused = once(lines, "data");
    api.push({
      svids: [{ spiffeId: ID, x509Svid: new Uint8Array([0x30, 0x05, 1]), x509SvidKey: new Uint8Array(), bundle: new Uint8Array() }],
    });
    let line = String((await refused)[0]);
    while (!line.includes("refused")) line = String((await once(lines, "data"))[0]);
    expect(line).to.contain("x509_svid");
    expect(source.identity.certificate?.serialNumber).to.equal(first.serial);
    const updated = nextUpdate(source);
    const second = api.rotate();
    await updated;
    expect(source.identity.certificate?.serialNumber).to.equal(second.serial);
  });
});
