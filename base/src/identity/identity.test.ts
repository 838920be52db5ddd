import { createSign, createVerify, type KeyObject, X509Certificate } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { TestPki } from "@nsm-ts/testing/pki";
import { expect } from "chai";
import { MockClock } from "../clock/index.js";
import { Code, StatusError } from "../status/index.js";
import { devIdentity, ephemeralIdentity, loadIdentity, spiffeIdOf } from "./index.js";

async function rejection(p: Promise<unknown>): Promise<StatusError> {
  try {
    await p;
  } catch (err) {
    expect(err).to.be.instanceOf(StatusError);
    return err as StatusError;
  }
  throw new Error("expected a rejection");
}

describe("tools/identity", () => {
  let pki: TestPki;
  const dirs: string[] = [];

  before(function () {
    this.timeout(30_000);
    pki = new TestPki();
    dirs.push(pki.dir);
  });

  after(() => {
    pki.remove();
    for (const d of dirs) expect(existsSync(d), `${d} removed`).to.equal(false);
  });

  it("loads a PKCS#8 key and certificate with a spiffe URI SAN, checked against the CA", async () => {
    const leaf = pki.leaf("nse1", { san: "URI:spiffe://example.org/ns/default/pod/nse1" });
    const id = await loadIdentity({ ...leaf, caFile: pki.caFile });
    expect(id.spiffeId).to.equal("spiffe://example.org/ns/default/pod/nse1");
    expect(id.insecure).to.equal(false);
    expect(id.tls).to.deep.equal({ ...leaf, caFile: pki.caFile });
    expect(id.certPem).to.match(/^-----BEGIN CERTIFICATE-----/);
    expect(id.certificate?.toString()).to.equal(id.certPem);
    const left = (id.notAfter?.getTime() ?? 0) - Date.now();
    expect(left).to.be.within(23 * 3600_000, 24 * 3600_000 + 60_000);
    // The key signs what the certificate's public key verifies.
    const sig = createSign("sha256")
      .update("hello")
      .sign(id.privateKey as KeyObject);
    expect(createVerify("sha256").update("hello").verify(id.publicKey, sig)).to.equal(true);
  });

  it("accepts a chain file (leaf + intermediate) that leads to the CA, and only that CA", async function () {
    this.timeout(30_000);
    const leaf = pki.chainedLeaf("chained", { san: "URI:spiffe://example.org/chained" });
    const id = await loadIdentity({ ...leaf, caFile: pki.caFile });
    expect(id.spiffeId).to.equal("spiffe://example.org/chained");
    expect(id.certificate?.subject).to.contain("CN=chained");
    // Without the intermediate in the file the leaf no longer chains to the root.
    const lone = pki.write("chained-lone.pem", id.certPem ?? "");
    const err = await rejection(loadIdentity({ certFile: lone, keyFile: leaf.keyFile, caFile: pki.caFile }));
    expect(err.message).to.contain("is not issued by a CA in");
  });

  it("loads a SEC1 ('EC PRIVATE KEY') key", async () => {
    const leaf = pki.leaf("sec1", { san: "URI:spiffe://example.org/sec1", keyFormat: "sec1" });
    expect(readFileSync(leaf.keyFile, "utf8")).to.contain("BEGIN EC PRIVATE KEY");
    const id = await loadIdentity(leaf);
    expect(id.spiffeId).to.equal("spiffe://example.org/sec1");
  });

  it("picks the spiffe URI among several SANs", async () => {
    const leaf = pki.leaf("multi", { san: "DNS:nse.example.org,URI:https://example.org/x,URI:spiffe://example.org/multi" });
    const cert = new X509Certificate(readFileSync(leaf.certFile));
    expect(spiffeIdOf(cert)).to.equal("spiffe://example.org/multi");
    expect((await loadIdentity(leaf)).spiffeId).to.equal("spiffe://example.org/multi");
  });

  it("names the missing certificate file", async () => {
    const missing = join(pki.dir, "nope.pem");
    const err = await rejection(loadIdentity({ certFile: missing, keyFile: missing }));
    expect(err.code).to.equal(Code.InvalidArgument);
    expect(err.message).to.contain(`certificate file ${missing}`);
  });

  it("names a certificate file that holds no certificate", async () => {
    const leaf = pki.leaf("garbage-ok", { san: "URI:spiffe://example.org/g" });
    const bad = pki.write("garbage.pem", "not a certificate\n");
    const err = await rejection(loadIdentity({ certFile: bad, keyFile: leaf.keyFile }));
    expect(err.message).to.contain(`certificate file ${bad} holds no PEM certificate`);
    const broken = pki.write("broken.pem", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n");
    const err2 = await rejection(loadIdentity({ certFile: broken, keyFile: leaf.keyFile }));
    expect(err2.message).to.contain(`certificate file ${broken}: certificate #1 is invalid`);
  });

  it("names a missing or malformed key file", async () => {
    const leaf = pki.leaf("keyless", { san: "URI:spiffe://example.org/k" });
    const missing = join(pki.dir, "missing.key");
    expect((await rejection(loadIdentity({ certFile: leaf.certFile, keyFile: missing }))).message).to.contain(
      `private key file ${missing}`,
    );
    const bad = pki.write("bad.key", "junk");
    expect((await rejection(loadIdentity({ certFile: leaf.certFile, keyFile: bad }))).message).to.contain(
      `private key file ${bad} is not a valid PEM private key`,
    );
  });

  it("rejects a key that is not EC P-256", async () => {
    const p384 = pki.leaf("p384", { san: "URI:spiffe://example.org/p384", curve: "P-384" });
    const err = await rejection(loadIdentity(p384));
    expect(err.message).to.contain(`private key file ${p384.keyFile} holds a EC secp384r1 key; ES256 needs EC P-256`);
  });

  it("rejects a key that does not belong to the certificate", async () => {
    const a = pki.leaf("a", { san: "URI:spiffe://example.org/a" });
    const b = pki.leaf("b", { san: "URI:spiffe://example.org/b" });
    const err = await rejection(loadIdentity({ certFile: a.certFile, keyFile: b.keyFile }));
    expect(err.message).to.contain(`private key file ${b.keyFile} does not match certificate ${a.certFile}`);
  });

  it("rejects a certificate without a spiffe URI SAN", async () => {
    const dns = pki.leaf("dnsonly", { san: "DNS:nse.example.org" });
    const err = await rejection(loadIdentity(dns));
    expect(err.message).to.contain(`certificate ${dns.certFile} has no spiffe:// URI SAN`);
    const none = pki.leaf("nosan");
    expect((await rejection(loadIdentity(none))).message).to.contain("subjectAltName: none");
  });

  it("rejects a certificate not issued by the given CA", async function () {
    this.timeout(30_000);
    const other = new TestPki("other-ca");
    try {
      const leaf = other.leaf("stranger", { san: "URI:spiffe://other.org/x" });
      const err = await rejection(loadIdentity({ ...leaf, caFile: pki.caFile }));
      expect(err.message).to.contain(`certificate ${leaf.certFile} is not issued by a CA in ${pki.caFile}`);
    } finally {
      other.remove();
    }
  });

  it("rejects an expired or not yet valid certificate (by the injected clock)", async () => {
    const leaf = pki.leaf("old", { san: "URI:spiffe://example.org/old" });
    const id = await loadIdentity(leaf);
    const late = new MockClock((id.notAfter?.getTime() ?? 0) + 1000);
    expect((await rejection(loadIdentity(leaf, { clock: late }))).message).to.contain("expired at");
    const early = new MockClock(Date.UTC(2000, 0, 1));
    expect((await rejection(loadIdentity(leaf, { clock: early }))).message).to.contain("is not valid before");
  });

  it("creates an insecure dev identity with an ephemeral P-256 key", async () => {
    const id = await devIdentity("nsmgr-node1");
    expect(id.spiffeId).to.equal("spiffe://nsm-ts.dev/nsmgr-node1");
    expect(id.insecure).to.equal(true);
    expect(id.certificate).to.equal(undefined);
    expect(id.notAfter).to.equal(undefined);
    expect(id.publicKey.asymmetricKeyDetails?.namedCurve).to.equal("prime256v1");
    const other = await devIdentity("nsmgr-node1");
    expect(other.publicKey.export({ format: "der", type: "spki" })).not.to.deep.equal(id.publicKey.export({ format: "der", type: "spki" }));
    expect((await devIdentity("ns/default/nse")).spiffeId).to.equal("spiffe://nsm-ts.dev/ns/default/nse");
  });

  it("rejects dev names outside the SPIFFE path alphabet", async () => {
    for (const bad of ["", "a b", "a//b", "../x", "x?y"]) {
      expect((await rejection(devIdentity(bad))).code).to.equal(Code.InvalidArgument);
    }
    expect((await rejection(ephemeralIdentity("https://x"))).message).to.contain("not a spiffe:// ID");
  });
});
