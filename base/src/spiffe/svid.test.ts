/**
 * The checks on what the Workload API hands over: the SPIFFE_ENDPOINT_SOCKET forms, and X509SVID messages that are
 * malformed, mismatched or unusable for ES256 tokens, each refused with InvalidArgument naming the field.
 */
import { createPrivateKey } from "node:crypto";
import { readFileSync } from "node:fs";
import { create } from "@bufbuild/protobuf";
import { X509SVIDSchema } from "@nsm-ts/api/spiffe";
import { TestPki } from "@nsm-ts/testing/pki";
import { derOfPemFile } from "@nsm-ts/testing/spiffe";
import { expect } from "chai";
import { MockClock } from "../clock/index.js";
import { commonVars, defineConfig } from "../config/index.js";
import { Code, StatusError } from "../status/index.js";
import { parseWorkloadApiAddress, parseX509Svid, splitDer } from "./index.js";

const ID = "spiffe://test.com/w";

describe("spiffe: Workload API address and X509SVID checks", () => {
  let pki: TestPki;
  before(() => {
    pki = new TestPki("svid-ca");
  });
  after(() => pki.remove());

  function svid(opts: { san?: string; curve?: "P-256" | "P-384"; keyFrom?: string; spiffeId?: string; bundle?: string } = {}) {
    const leaf = pki.leaf(`l-${Math.random().toString(36).slice(2)}`, { san: opts.san ?? `URI:${ID}`, curve: opts.curve ?? "P-256" });
    const key = createPrivateKey(readFileSync(opts.keyFrom ?? leaf.keyFile)).export({ type: "pkcs8", format: "der" });
    return create(X509SVIDSchema, {
      spiffeId: opts.spiffeId ?? ID,
      x509Svid: derOfPemFile(leaf.certFile),
      x509SvidKey: new Uint8Array(key),
      bundle: derOfPemFile(opts.bundle ?? pki.caFile),
    });
  }

  function refusal(f: () => unknown): string {
    try {
      f();
    } catch (err) {
      expect(err).to.be.instanceOf(StatusError);
      expect((err as StatusError).code).to.equal(Code.InvalidArgument);
      return (err as StatusError).message;
    }
    return expect.fail("accepted");
  }

  it("accepts unix:///path and unix:/path and refuses other forms with the reason", () => {
    expect(parseWorkloadApiAddress("unix:///run/spire/sockets/agent.sock")).to.equal("unix:///run/spire/sockets/agent.sock");
    expect(parseWorkloadApiAddress("unix:/run/spire/sockets/agent.sock")).to.equal("unix:///run/spire/sockets/agent.sock");
    const bad = {
      "/run/agent.sock": "not a URI",
      "tcp://127.0.0.1:8081": "scheme must be unix",
      "unix://host/agent.sock": "a host is not allowed",
      "unix:agent.sock": "must be absolute",
      "unix:///run/agent.sock?x=1": "query",
      "unix:///run/agent.sock#f": "fragment",
    };
    for (const [addr, why] of Object.entries(bad)) expect(() => parseWorkloadApiAddress(addr), addr).to.throw(why);
  });

  it("a bad SPIFFE_ENDPOINT_SOCKET is a config error naming the variable", () => {
    const schema = defineConfig(commonVars({ name: "x" }));
    expect(() => schema.parse({ SPIFFE_ENDPOINT_SOCKET: "tcp://127.0.0.1:1" })).to.throw(/^SPIFFE_ENDPOINT_SOCKET: .*scheme must be unix/);
    expect(schema.parse({ SPIFFE_ENDPOINT_SOCKET: "unix:/a.sock" }).spiffeEndpointSocket).to.equal("unix:///a.sock");
    expect(schema.parse({}).spiffeStartTimeout).to.equal(30_000);
  });

  it("accepts a good SVID and refuses bad ones naming the field", () => {
    const clock = new MockClock(Date.now());
    expect(parseX509Svid(svid(), clock).spiffeId).to.equal(ID);
    const other = pki.leaf("other-key", { san: `URI:${ID}` });
    expect(refusal(() => parseX509Svid(svid({ keyFrom: other.keyFile }), clock))).to.contain("x509_svid_key does not match");
    expect(refusal(() => parseX509Svid(svid({ curve: "P-384" }), clock))).to.contain("x509_svid_key is a EC secp384r1 key");
    expect(refusal(() => parseX509Svid(svid({ spiffeId: "spiffe://test.com/else" }), clock))).to.contain("spiffe_id");
    expect(refusal(() => parseX509Svid(svid({ san: "DNS:localhost" }), clock))).to.contain("no spiffe:// URI SAN");
    const foreign = new TestPki("foreign-ca");
    try {
      expect(refusal(() => parseX509Svid(svid({ bundle: foreign.caFile }), clock))).to.contain("does not chain to a CA of bundle");
    } finally {
      foreign.remove();
    }
    const late = new MockClock(Date.now() + 3 * 86_400_000);
    expect(refusal(() => parseX509Svid(svid(), late))).to.contain("x509_svid expired");
    const broken = create(X509SVIDSchema, { ...svid(), x509SvidKey: new Uint8Array([1, 2, 3]) });
    expect(refusal(() => parseX509Svid(broken, clock))).to.contain("x509_svid_key is not a PKCS#8 DER private key");
  });

  it("splits concatenated DER and refuses truncated or foreign bytes", () => {
    const two = derOfPemFile(pki.caFile);
    const both = new Uint8Array([...two, ...two]);
    expect(splitDer(both, "bundle")).to.have.length(2);
    expect(refusal(() => splitDer(both.subarray(0, both.length - 1), "bundle"))).to.contain("bundle: DER value at byte");
    expect(refusal(() => splitDer(new Uint8Array([0x04, 0x01, 0x00]), "x509_svid"))).to.contain("x509_svid: no DER SEQUENCE at byte 0");
    expect(refusal(() => splitDer(new Uint8Array(), "bundle"))).to.contain("bundle is empty");
    expect(refusal(() => splitDer(new Uint8Array([0x30, 0x85, 1, 1, 1, 1, 1]), "bundle"))).to.contain("bad DER length");
  });
});
