/**
 * TLS channels to servers whose certificates are SPIFFE X.509-SVIDs (a `spiffe://` URI SAN, no DNS name):
 * the chain is verified against the CA, the SPIFFE ID replaces the hostname check, and the channel exposes
 * the server certificate of its handshake (what connect addresses tokens to).
 */

import { NetworkService } from "@nsm-ts/api/networkservice";
import { TestPki } from "@nsm-ts/testing/pki";
import { expect } from "chai";
import { spiffeIdOf } from "../identity/index.js";
import { Code, StatusError } from "../status/index.js";
import { type Channel, createClient, createServer, dial, type NsmServer } from "./index.js";

const SERVER_ID = "spiffe://tls.nsm-ts/server";

describe("grpc TLS with SPIFFE certificates", () => {
  let pki: TestPki;
  const servers: NsmServer[] = [];
  const channels: Channel[] = [];

  before(() => {
    pki = new TestPki("spiffe-ca");
  });
  after(() => pki.remove());
  afterEach(async () => {
    for (const c of channels.splice(0)) c.close();
    await Promise.all(servers.splice(0).map((s) => s.close({ graceMs: 100 })));
  });

  async function serve(san: string, listen = "tcp://127.0.0.1:0"): Promise<string> {
    const leaf = pki.leaf(`server-${servers.length}`, { san });
    const server = createServer({ tls: { ...leaf, caFile: pki.caFile } });
    servers.push(server);
    server.addService(NetworkService, { request: async (req) => req.connection ?? {}, close: async () => ({}) });
    return server.listen(listen);
  }

  function channel(url: string): Channel {
    const ch = dial(url, {
      tls: { ...pki.leaf(`client-${channels.length}`, { san: "URI:spiffe://tls.nsm-ts/client" }), caFile: pki.caFile },
    });
    channels.push(ch);
    return ch;
  }

  for (const where of ["tcp", "unix"] as const) {
    it(`accepts a server certificate with only a SPIFFE URI SAN and exposes it (${where})`, async () => {
      const listen = where === "tcp" ? "tcp://127.0.0.1:0" : `unix://${pki.dir}/server.sock`;
      const url = await serve(`URI:${SERVER_ID}`, listen);
      const ch = channel(url);
      expect(ch.secure).to.equal(true);
      expect(ch.peerCertificate()).to.equal(undefined);
      await ch.ready(Date.now() + 5_000);
      const cert = ch.peerCertificate();
      expect(cert && spiffeIdOf(cert)).to.equal(SERVER_ID);
      expect((await createClient(NetworkService, ch).request({ connection: { id: "x" } })).id).to.equal("x");
    });
  }

  it("keeps the hostname check for certificates without a SPIFFE ID", async () => {
    const url = await serve("DNS:elsewhere.example");
    const ch = channel(url);
    const err = await ch.ready(Date.now() + 5_000).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).to.be.instanceOf(StatusError);
    expect((err as StatusError).code).to.equal(Code.Unavailable);
    expect(ch.peerCertificate()).to.equal(undefined);
  });

  it("ready() fails fast with Unavailable when nothing listens, and insecure channels have no peer certificate", async () => {
    const url = await serve(`URI:${SERVER_ID}`);
    const port = new URL(url.replace("tcp://", "http://")).port;
    await Promise.all(servers.splice(0).map((s) => s.close({ graceMs: 0 })));
    const ch = channel(`tcp://127.0.0.1:${port}`);
    const started = Date.now();
    const err = await ch.ready(Date.now() + 10_000).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect((err as StatusError).code).to.equal(Code.Unavailable);
    expect(Date.now() - started).to.be.below(5_000);

    const insecure = dial(`tcp://127.0.0.1:${port}`);
    channels.push(insecure);
    expect(insecure.secure).to.equal(false);
    expect(insecure.peerCertificate()).to.equal(undefined);
  });

  it("ready(…, { waitForReady }) waits through failed attempts until the server appears", async () => {
    const listen = `unix://${pki.dir}/late.sock`;
    const ch = dial(listen, { grpcOptions: { "grpc.initial_reconnect_backoff_ms": 50, "grpc.max_reconnect_backoff_ms": 200 } });
    channels.push(ch);
    const fast = await ch.ready(Date.now() + 5_000).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect((fast as StatusError).code, "without waitForReady a failed attempt ends the wait").to.equal(Code.Unavailable);
    const waiting = ch.ready(Date.now() + 10_000, undefined, { waitForReady: true });
    const server = createServer();
    servers.push(server);
    server.addService(NetworkService, { request: async (req) => req.connection ?? {}, close: async () => ({}) });
    await server.listen(listen);
    await waiting;
  });
});
