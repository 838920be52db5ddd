import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as grpc from "@grpc/grpc-js";
import { NetworkService } from "@nsm-ts/api/networkservice";
import { expect } from "chai";
import { Code, StatusError } from "../status/index.js";
import {
  type Channel,
  createClient,
  createServer,
  dial,
  type NsmServer,
  parseUrl,
  type ServerCallContext,
  type TlsFiles,
} from "./index.js";

const SPIFFE_ID = "spiffe://test.nsm-ts/ns/a/pod/b";

/** Makes a throwaway CA and leaf certificates with openssl (P-256, one day). */
function makePki(dir: string): { ca: string; server: TlsFiles; client: TlsFiles; otherClient: TlsFiles } {
  const p = (f: string): string => join(dir, f);
  // A fresh P-256 key, unencrypted, for every certificate.
  const EC_KEY = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];
  const ossl = (...args: string[]): void => {
    execFileSync("openssl", args, { stdio: "pipe" });
  };
  const newCa = (name: string): void =>
    ossl(
      "req",
      "-x509",
      ...EC_KEY,
      "-keyout",
      p(`${name}.key`),
      "-out",
      p(`${name}.crt`),
      "-subj",
      `/CN=${name}`,
      "-days",
      "1",
      "-addext",
      "basicConstraints=critical,CA:TRUE",
      "-addext",
      "keyUsage=critical,keyCertSign,cRLSign",
    );
  const leaf = (name: string, ca: string, ext: string): TlsFiles => {
    writeFileSync(p(`${name}.ext`), ext);
    ossl("req", ...EC_KEY, "-keyout", p(`${name}.key`), "-out", p(`${name}.csr`), "-subj", `/CN=${name}`);
    ossl(
      "x509",
      "-req",
      "-in",
      p(`${name}.csr`),
      "-CA",
      p(`${ca}.crt`),
      "-CAkey",
      p(`${ca}.key`),
      "-CAcreateserial",
      "-out",
      p(`${name}.crt`),
      "-days",
      "1",
      "-extfile",
      p(`${name}.ext`),
    );
    return { certFile: p(`${name}.crt`), keyFile: p(`${name}.key`), caFile: p(`${ca}.crt`) };
  };
  newCa("ca");
  newCa("other-ca");
  return {
    ca: p("ca.crt"),
    server: leaf(
      "server",
      "ca",
      "subjectAltName=DNS:localhost,IP:127.0.0.1,URI:spiffe://test.nsm-ts/ns/nsm/pod/server\nextendedKeyUsage=serverAuth,clientAuth\n",
    ),
    client: leaf("client", "ca", `subjectAltName=URI:${SPIFFE_ID}\nextendedKeyUsage=clientAuth\n`),
    otherClient: leaf("intruder", "other-ca", `subjectAltName=URI:spiffe://evil.example/x\nextendedKeyUsage=clientAuth\n`),
  };
}

describe("grpc TLS and mTLS from certificate files", () => {
  let dir: string;
  let pki: ReturnType<typeof makePki>;
  const servers: NsmServer[] = [];
  const channels: Channel[] = [];

  before(() => {
    dir = mkdtempSync(join(tmpdir(), "nsm-grpc-tls-"));
    pki = makePki(dir);
  });
  after(() => rmSync(dir, { recursive: true, force: true }));
  afterEach(async () => {
    for (const c of channels.splice(0)) c.close();
    await Promise.all(servers.splice(0).map((s) => s.close({ graceMs: 500 })));
  });

  async function serve(tls: TlsFiles, seen: ServerCallContext[]): Promise<string> {
    const server = createServer({ tls });
    servers.push(server);
    server.addService(NetworkService, {
      async request(req, ctx) {
        seen.push(ctx);
        return req.connection ?? {};
      },
      close: async () => ({}),
    });
    return server.listen("tcp://127.0.0.1:0");
  }

  it("serves over TLS without client certificates when no CA is configured", async () => {
    const seen: ServerCallContext[] = [];
    const url = await serve({ certFile: pki.server.certFile, keyFile: pki.server.keyFile }, seen);
    const channel = dial(url, { tls: pki.client });
    channels.push(channel);
    expect((await createClient(NetworkService, channel).request({ connection: { id: "tls" } })).id).to.equal("tls");
    expect(seen[0]?.peerCertificate).to.equal(undefined);

    const insecure = dial(url);
    channels.push(insecure);
    const err = await createClient(NetworkService, insecure)
      .request({}, { timeoutMs: 2000 })
      .catch((e: unknown) => e);
    expect(err).to.be.instanceOf(StatusError);
    expect([Code.Unavailable, Code.DeadlineExceeded, Code.Internal]).to.include((err as StatusError).code);
  });

  it("exposes the client's certificate and SPIFFE URI SAN under mTLS", async () => {
    const seen: ServerCallContext[] = [];
    const url = await serve(pki.server, seen);
    const channel = dial(url, { tls: pki.client });
    channels.push(channel);
    expect((await createClient(NetworkService, channel).request({ connection: { id: "mtls" } })).id).to.equal("mtls");
    const cert = seen[0]?.peerCertificate;
    expect(cert?.subjectAltName).to.contain(`URI:${SPIFFE_ID}`);
    expect(cert?.subject).to.contain("CN=client");
  });

  it("rejects clients without a certificate, or with one from another CA, under mTLS", async () => {
    const seen: ServerCallContext[] = [];
    const url = await serve(pki.server, seen);
    const target = parseUrl(url).grpcTarget;
    const def = { path: "/networkservice.NetworkService/Request", ser: (b: Buffer) => b, de: (b: Buffer) => b };
    const call = (creds: grpc.ChannelCredentials): Promise<number> => {
      const raw = new grpc.Client(target, creds);
      return new Promise<number>((resolve) =>
        raw.makeUnaryRequest(def.path, def.ser, def.de, Buffer.alloc(0), new grpc.Metadata(), { deadline: Date.now() + 3000 }, (err) => {
          raw.close();
          resolve(err?.code ?? 0);
        }),
      );
    };
    const noCert = await call(grpc.credentials.createSsl(await import("node:fs").then((fs) => fs.readFileSync(pki.ca))));
    expect(noCert).to.not.equal(Code.OK);
    expect([Code.Unavailable, Code.DeadlineExceeded]).to.include(noCert);

    const other = dial(url, { tls: { ...pki.otherClient, caFile: pki.ca } });
    channels.push(other);
    const err = await createClient(NetworkService, other)
      .request({}, { timeoutMs: 3000 })
      .catch((e: unknown) => e);
    expect(err).to.be.instanceOf(StatusError);
    expect([Code.Unavailable, Code.DeadlineExceeded]).to.include((err as StatusError).code);
    expect(seen).to.have.length(0);
  });
});
