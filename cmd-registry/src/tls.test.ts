/**
 * cmd-registry with certificate files: it serves mTLS only, signs with its certificate's SPIFFE ID, and takes the
 * registrant's identity from the client certificate, so a token claiming another identity cannot take a name.
 * Certificates come from the `openssl` CLI in a temp dir (removed afterwards).
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as grpc from "@grpc/grpc-js";
import { expect } from "chai";
import { callMetadata, loadServices, type PlainClient, running, startRegistry, stopAll, unary } from "./process-harness.js";

function openssl(dir: string, args: string[]): void {
  execFileSync("openssl", args, { cwd: dir, stdio: "pipe" });
}

/** A CA and two leaves (server with an IP SAN for 127.0.0.1, client) with SPIFFE URI SANs. */
function makePki(dir: string): { ca: string; server: [string, string]; client: [string, string] } {
  const ca = join(dir, "ca.pem");
  const caKey = join(dir, "ca.key");
  openssl(dir, [
    "req",
    "-x509",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:P-256",
    "-nodes",
    "-keyout",
    caKey,
    "-out",
    ca,
    "-subj",
    "/CN=test-ca",
    "-days",
    "2",
    "-addext",
    "basicConstraints=critical,CA:TRUE",
    "-addext",
    "keyUsage=critical,keyCertSign,cRLSign",
  ]);
  const leaf = (name: string, san: string, serial: number): [string, string] => {
    const key = join(dir, `${name}.key`);
    const cert = join(dir, `${name}.pem`);
    const csr = join(dir, `${name}.csr`);
    const ext = join(dir, `${name}.ext`);
    writeFileSync(ext, `subjectAltName=${san}\nextendedKeyUsage=serverAuth,clientAuth\n`);
    openssl(dir, ["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", key]);
    openssl(dir, ["req", "-new", "-key", key, "-out", csr, "-subj", `/CN=${name}`]);
    openssl(dir, [
      "x509",
      "-req",
      "-in",
      csr,
      "-CA",
      ca,
      "-CAkey",
      caKey,
      "-set_serial",
      String(serial),
      "-out",
      cert,
      "-days",
      "1",
      "-extfile",
      ext,
    ]);
    return [cert, key];
  };
  return {
    ca,
    server: leaf("registry", "URI:spiffe://test.com/registry,DNS:localhost,IP:127.0.0.1", 2),
    client: leaf("client", "URI:spiffe://test.com/client", 3),
  };
}

describe("cmd-registry with mTLS", function () {
  this.timeout(30_000);
  const services = loadServices();
  let dir: string;
  const clients: PlainClient[] = [];

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "nsm-ts-registry-tls-"));
  });
  afterEach(async () => {
    for (const c of clients.splice(0)) grpc.Client.prototype.close.call(c);
    await stopAll();
    rmSync(dir, { recursive: true, force: true });
    expect(running()).to.equal(0);
  });

  it("serves mTLS clients and owns names by the client certificate's identity", async () => {
    const pki = makePki(dir);
    const reg = await startRegistry({ NSM_TLS_CERT_FILE: pki.server[0], NSM_TLS_KEY_FILE: pki.server[1], NSM_TLS_CA_FILE: pki.ca });
    expect(reg.output()).to.not.contain("insecure dev mode");
    const creds = grpc.credentials.createSsl(readFileSync(pki.ca), readFileSync(pki.client[1]), readFileSync(pki.client[0]));
    // Name the server "localhost": TLS SNI may not carry an IP address (RFC 6066).
    const c = new services.nse(reg.target, creds, { "grpc.use_local_subchannel_pool": 1, "grpc.ssl_target_name_override": "localhost" });
    clients.push(c);
    // The token claims another identity; the certificate wins for a direct registrant.
    const res = await unary<{ path_ids: string[] }>(
      c,
      "Register",
      { name: "tls-nse", url: "tcp://198.51.100.1:5001" },
      callMetadata("spiffe://test.com/liar"),
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
