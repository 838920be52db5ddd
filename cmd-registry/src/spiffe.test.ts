/**
 * cmd-registry with its identity from the SPIFFE Workload API (SPIFFE_ENDPOINT_SOCKET, a test Workload API on a unix
 * socket): it serves mTLS with the X.509-SVID, and after a rotation new connections see the new certificate without a
 * restart while the program keeps serving. Without an SVID it exits at the start deadline naming the variable.
 */
import { readFileSync } from "node:fs";
import { connect } from "node:tls";
import * as grpc from "@grpc/grpc-js";
import { type TestLeaf, TestPki } from "@nsm-ts/testing/pki";
import { TestWorkloadApi } from "@nsm-ts/testing/spiffe";
import { expect } from "chai";
import { loadServices, type PlainClient, type Registry, running, startRegistry, stopAll, unary } from "./process.fixture.js";

const REGISTRY_ID = "spiffe://test.com/registry";

/** The serial of the certificate the server presents on a new TLS connection (HTTP/2 ALPN, our client certificate). */
function serverSerial(target: string, client: TestLeaf, caFile: string): Promise<string> {
  const [host, port] = target.split(":") as [string, string];
  return new Promise((resolve, reject) => {
    const socket = connect({
      host,
      port: Number(port),
      ca: readFileSync(caFile),
      cert: readFileSync(client.certFile),
      key: readFileSync(client.keyFile),
      ALPNProtocols: ["h2"],
      // SVIDs carry only a SPIFFE ID, no host name: the chain is what is checked here.
      checkServerIdentity: () => undefined,
    });
    socket.once("secureConnect", () => {
      const serial = socket.getPeerCertificate().serialNumber;
      socket.destroy();
      resolve(serial);
    });
    socket.once("error", reject);
  });
}

/** Resolves once the registry's log contains `text`. */
function logged(reg: Registry, text: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const check = (): void => {
      if (!reg.output().includes(text)) return;
      reg.child.stdout?.off("data", check);
      reg.child.off("exit", onExit);
      resolve();
    };
    const onExit = (code: number | null): void => reject(new Error(`cmd-registry exited with ${code}: ${reg.output()}`));
    reg.child.stdout?.on("data", check);
    reg.child.once("exit", onExit);
    check();
  });
}

describe("cmd-registry with the SPIFFE Workload API", function () {
  this.timeout(60_000);
  const services = loadServices();
  let pki: TestPki;
  let api: TestWorkloadApi;
  const clients: PlainClient[] = [];

  beforeEach(async () => {
    pki = new TestPki("spire-ca");
    api = await TestWorkloadApi.start(pki, { spiffeId: REGISTRY_ID, chained: true });
  });
  afterEach(async () => {
    for (const c of clients.splice(0)) grpc.Client.prototype.close.call(c);
    await stopAll();
    await api.close();
    pki.remove();
    expect(running()).to.equal(0);
  });

  function healthClient(target: string, client: TestLeaf): PlainClient {
    const creds = grpc.credentials.createSsl(readFileSync(pki.caFile), readFileSync(client.keyFile), readFileSync(client.certFile), {
      checkServerIdentity: () => undefined,
    });
    // Own subchannels: each client is a new TLS connection.
    const c = new services.health(target, creds, { "grpc.use_local_subchannel_pool": 1 });
    clients.push(c);
    return c;
  }

  it("serves mTLS with the X.509-SVID, then with the rotated one, without a restart", async () => {
    const reg = await startRegistry({ SPIFFE_ENDPOINT_SOCKET: api.url });
    expect(reg.output()).to.not.contain("insecure dev mode");
    expect(reg.output()).to.contain(REGISTRY_ID);
    const client = pki.leaf("client", { san: "URI:spiffe://test.com/client" });
    const first = api.current();
    expect(await serverSerial(reg.target, client, pki.caFile)).to.equal(first.serial);
    const before = healthClient(reg.target, client);
    expect(await unary<{ status: string }>(before, "Check", {}, new grpc.Metadata())).to.deep.include({ status: "SERVING" });

    const second = api.rotate();
    await logged(reg, `"serial":"${second.serial}"`);
    expect(await serverSerial(reg.target, client, pki.caFile), "a new connection sees the rotated SVID").to.equal(second.serial);
    const after = healthClient(reg.target, client);
    expect(await unary<{ status: string }>(after, "Check", {}, new grpc.Metadata())).to.deep.include({ status: "SERVING" });
    expect(await unary<{ status: string }>(before, "Check", {}, new grpc.Metadata()), "the old connection").to.deep.include({
      status: "SERVING",
    });
    expect(reg.child.exitCode).to.equal(null);

    // A client without a certificate of the trust domain is refused.
    const plain = new services.health(reg.target, grpc.credentials.createInsecure(), { "grpc.use_local_subchannel_pool": 1 });
    clients.push(plain);
    const err = await unary(plain, "Check", {}, new grpc.Metadata()).then(
      () => undefined,
      (e: grpc.ServiceError) => e,
    );
    expect(err?.code).to.equal(grpc.status.UNAVAILABLE);
  });

  it("exits at NSM_SPIFFE_START_TIMEOUT naming SPIFFE_ENDPOINT_SOCKET when no SVID comes", async () => {
    const url = `unix://${pki.dir}/no-agent.sock`;
    const err = await startRegistry({ SPIFFE_ENDPOINT_SOCKET: url, NSM_SPIFFE_START_TIMEOUT: "1s" }).then(
      () => expect.fail("started without an SVID"),
      (e: Error) => e,
    );
    expect(err.message).to.contain("cmd-registry exited with 1");
    expect(err.message).to.contain(`SPIFFE_ENDPOINT_SOCKET=${url}`);
  });
});
