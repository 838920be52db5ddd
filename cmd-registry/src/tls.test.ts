/**
 * cmd-registry with certificate files: it serves mTLS only, signs with its certificate's SPIFFE ID, and takes the
 * registrant's identity from the client certificate, so a token claiming another identity cannot take a name.
 * Certificates come from the `openssl` CLI in a temp dir (removed afterwards).
 */
import { createPrivateKey } from "node:crypto";
import { readFileSync } from "node:fs";
import * as grpc from "@grpc/grpc-js";
import { TestPki } from "@nsm-ts/testing/pki";
import { expect } from "chai";
import { callMetadata, loadServices, type PlainClient, running, startRegistry, stopAll, unary } from "./process.fixture.js";

describe("cmd-registry with mTLS", function () {
  this.timeout(30_000);
  const services = loadServices();
  let pki: TestPki;
  const clients: PlainClient[] = [];

  beforeEach(() => {
    pki = new TestPki();
  });
  afterEach(async () => {
    for (const c of clients.splice(0)) grpc.Client.prototype.close.call(c);
    await stopAll();
    pki.remove();
    expect(running()).to.equal(0);
  });

  it("serves mTLS clients and owns names by the client certificate's identity", async () => {
    // Server with an IP SAN for 127.0.0.1; both with SPIFFE URI SANs.
    const server = pki.leaf("registry", { san: "URI:spiffe://test.com/registry,DNS:localhost,IP:127.0.0.1" });
    const client = pki.leaf("client", { san: "URI:spiffe://test.com/client" });
    const reg = await startRegistry({ NSM_TLS_CERT_FILE: server.certFile, NSM_TLS_KEY_FILE: server.keyFile, NSM_TLS_CA_FILE: pki.caFile });
    expect(reg.output()).to.not.contain("insecure dev mode");
    const creds = grpc.credentials.createSsl(readFileSync(pki.caFile), readFileSync(client.keyFile), readFileSync(client.certFile));
    // Name the server "localhost": TLS SNI may not carry an IP address (RFC 6066).
    const c = new services.nse(reg.target, creds, { "grpc.use_local_subchannel_pool": 1, "grpc.ssl_target_name_override": "localhost" });
    clients.push(c);
    // A token that is not signed by the caller's certificate key is refused, whatever identity it claims.
    const forged = await unary(
      c,
      "Register",
      { name: "tls-nse", url: "tcp://198.51.100.1:5001" },
      callMetadata("spiffe://test.com/liar"),
    ).then(
      () => undefined,
      (e: grpc.ServiceError) => e,
    );
    expect(forged?.code).to.equal(grpc.status.PERMISSION_DENIED);
    // Signed with its own key, the registrant owns the name under its certificate's identity.
    const clientKey = createPrivateKey(readFileSync(client.keyFile));
    const res = await unary<{ path_ids: string[] }>(
      c,
      "Register",
      { name: "tls-nse", url: "tcp://198.51.100.1:5001" },
      callMetadata("spiffe://test.com/client", true, clientKey),
    );
    expect(res.path_ids).to.deep.equal(["spiffe://test.com/client", "spiffe://test.com/registry"]);

    const plain = new services.nse(reg.target, grpc.credentials.createInsecure(), { "grpc.use_local_subchannel_pool": 1 });
    clients.push(plain);
    const err = await unary(plain, "Register", { name: "x" }, callMetadata("spiffe://test.com/client")).then(
      () => undefined,
      (e: grpc.ServiceError) => e,
    );
    expect(err?.code).to.equal(grpc.status.UNAVAILABLE);
  });
});
