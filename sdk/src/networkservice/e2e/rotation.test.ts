/**
 * SVID rotation under the enforced token policies (docs/wire-compatibility.md#spiffe-workload-api): a client and an
 * endpoint with identities from test Workload APIs keep one connection across a rotation of either side. Tokens are
 * checked against the certificate of the connection they travel on (next_token_signed on the client,
 * prev_token_signed on the endpoint), so each refresh after a rotation must run on a connection that presents the
 * new certificate: the endpoint's server sends GOAWAY, the client's channel starts a new connection.
 */
import * as grpc from "@grpc/grpc-js";
import { ChannelPool } from "@nsm-ts/base/dialer";
import { type Channel, createServer, type NsmServer } from "@nsm-ts/base/grpc";
import { createX509Source, type X509Source } from "@nsm-ts/base/spiffe";
import { createTokenGenerator, decodeToken, verifyToken } from "@nsm-ts/base/token";
import { TestPki } from "@nsm-ts/testing/pki";
import { TestWorkloadApi } from "@nsm-ts/testing/spiffe";
import { expect } from "chai";
import { client, endpoint, type NsmClient } from "../chains/index.js";

const TD = "spiffe://rotation.nsm-ts";

/** Resolves with the next material the source pushes. */
function nextUpdate(source: X509Source): Promise<void> {
  return new Promise((resolve) => {
    const off = source.tls.subscribe(() => {
      off();
      resolve();
    });
  });
}

/** Resolves when the channel's connection leaves READY (the endpoint's GOAWAY). */
function leavesReady(ch: Channel): Promise<void> {
  return new Promise((resolve, reject) =>
    ch.grpcClient
      .getChannel()
      .watchConnectivityState(grpc.connectivityState.READY, Date.now() + 10_000, (err) => (err ? reject(err) : resolve())),
  );
}

describe("SVID rotation with enforced token policies", function () {
  this.timeout(30_000);
  let pki: TestPki;
  let nscApi: TestWorkloadApi;
  let nseApi: TestWorkloadApi;
  let nscSource: X509Source;
  let nseSource: X509Source;
  let server: NsmServer;
  let pool: ChannelPool;
  let nsc: NsmClient;
  let url: string;

  beforeEach(async () => {
    pki = new TestPki("rotation-ca");
    nscApi = await TestWorkloadApi.start(pki, { spiffeId: `${TD}/nsc` });
    nseApi = await TestWorkloadApi.start(pki, { spiffeId: `${TD}/nse` });
    nscSource = await createX509Source(nscApi.url);
    nseSource = await createX509Source(nseApi.url);
    const gen = (s: X509Source) => createTokenGenerator(s.identity, { maxTokenLifetimeMs: 600_000 });
    server = createServer({ tls: nseSource.tls });
    endpoint({ name: "nse", tokenGenerator: gen(nseSource) }).serve(server);
    url = await server.listen("tcp://127.0.0.1:0");
    pool = new ChannelPool({ tls: nscSource.tls });
    nsc = client({ name: "nsc", connectTo: url, tokenGenerator: gen(nscSource), pool, refresh: false, heal: false, retry: false });
  });
  afterEach(async () => {
    await nsc.dispose();
    pool.closeAll();
    await server.close({ graceMs: 0 });
    await Promise.all([nscSource.close(), nseSource.close()]);
    await Promise.all([nscApi.close(), nseApi.close()]);
    pki.remove();
  });

  it("refreshes keep passing the policies after the endpoint rotates and after the client rotates", async () => {
    let conn = await nsc.request({ connection: { networkService: "ns-1" } });
    const channel = pool.acquire(url); // the client's own channel (reference counted)
    try {
      // The endpoint rotates: its server sends GOAWAY, the refresh reconnects and sees the new certificate.
      const goaway = leavesReady(channel);
      const nseUpdated = nextUpdate(nseSource);
      const nse2 = nseApi.rotate();
      await nseUpdated;
      await goaway;
      conn = await nsc.request({ connection: conn });
      const nseToken = conn.path?.pathSegments[1]?.token ?? "";
      expect(await verifyToken(nseToken, nse2.certificate), "endpoint token signed with its new key").to.equal(true);
      expect(channel.peerCertificate()?.serialNumber).to.equal(nse2.serial);

      // The client rotates: its channel starts a new connection for the refresh, presenting the new certificate.
      const nscUpdated = nextUpdate(nscSource);
      const nsc2 = nscApi.rotate();
      await nscUpdated;
      conn = await nsc.request({ connection: conn });
      const nscToken = conn.path?.pathSegments[0]?.token ?? "";
      expect(await verifyToken(nscToken, nsc2.certificate), "client token signed with its new key").to.equal(true);
      expect(decodeToken(nscToken).aud).to.deep.equal([`${TD}/nse`]);
      await nsc.close(conn);
    } finally {
      pool.release(url);
    }
  });
});
