import { createPublicKey, X509Certificate } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { TestPki } from "@nsm-ts/testing/pki";
import { generateTestToken, TEST_SPIFFE_ID, testIdentity } from "@nsm-ts/testing/token";
import { expect } from "chai";
import { decodeJwt, decodeProtectedHeader, SignJWT } from "jose";
import { MockClock } from "../clock/index.js";
import { devIdentity, type Identity, loadIdentity } from "../identity/index.js";
import { Code, StatusError } from "../status/index.js";
import {
  createTokenGenerator,
  decodeToken,
  EXPIRES_METADATA_KEY,
  formatExpires,
  parseExpires,
  parseExpiresTimestamp,
  peerFromCertificate,
  TOKEN_METADATA_KEY,
  tokenFromMetadata,
  tokenMetadata,
  tokenVerifyStats,
  verifyToken,
} from "./index.js";

const MIN = 60_000;

function thrown(fn: () => unknown): StatusError {
  try {
    fn();
  } catch (err) {
    expect(err).to.be.instanceOf(StatusError);
    return err as StatusError;
  }
  throw new Error("expected a throw");
}

describe("tools/token", () => {
  let pki: TestPki;
  let me: Identity;
  let peerCert: X509Certificate;

  before(async function () {
    this.timeout(30_000);
    pki = new TestPki();
    me = await loadIdentity(pki.leaf("nsc", { san: "URI:spiffe://example.org/nsc" }));
    peerCert = new X509Certificate(readFileSync(pki.leaf("nsmgr", { san: "URI:spiffe://example.org/nsmgr" }).certFile));
  });

  after(() => {
    pki.remove();
    expect(existsSync(pki.dir)).to.equal(false);
  });

  describe("generator", () => {
    it("signs sub/exp only (no aud without a peer), exp = now + max in whole seconds", async () => {
      const clock = new MockClock(Date.UTC(2026, 0, 1, 12, 0, 0, 750));
      const id = await devIdentity("nsc");
      const gen = createTokenGenerator(id, { maxTokenLifetimeMs: 10 * MIN, clock });
      const t = await gen();
      const claims = decodeJwt(t.token);
      expect(Object.keys(claims)).to.deep.equal(["sub", "exp"]);
      expect(claims.sub).to.equal("spiffe://nsm-ts.dev/nsc");
      expect(claims.exp).to.equal(Math.floor((clock.now() + 10 * MIN) / 1000));
      expect(t.expires.getTime()).to.equal((claims.exp ?? 0) * 1000);
      expect(decodeProtectedHeader(t.token)).to.deep.equal({ alg: "ES256", typ: "JWT" });
      expect(await verifyToken(t.token, id.publicKey)).to.equal(true);
    });

    it("addresses the token to the peer's SPIFFE ID, given or taken from its certificate", async () => {
      const clock = new MockClock();
      const gen = createTokenGenerator(await devIdentity("nsc"), { maxTokenLifetimeMs: 10 * MIN, clock });
      expect(decodeJwt((await gen({ spiffeId: "spiffe://example.org/x" })).token).aud).to.deep.equal(["spiffe://example.org/x"]);
      // Mock time a little before the peer cert's expiry would cap exp; keep it far from it here.
      await clock.set(Date.now());
      const viaCert = decodeJwt((await gen({ certificate: peerCert })).token);
      expect(Object.keys(viaCert)).to.deep.equal(["sub", "aud", "exp"]);
      expect(viaCert.aud).to.deep.equal(["spiffe://example.org/nsmgr"]);
      expect(peerFromCertificate(peerCert)).to.deep.equal({ spiffeId: "spiffe://example.org/nsmgr", certificate: peerCert });
    });

    it("caps exp at the own certificate's expiry", async () => {
      const notAfter = me.notAfter?.getTime() ?? 0;
      const clock = new MockClock(notAfter - 5 * MIN);
      const t = await createTokenGenerator(me, { maxTokenLifetimeMs: 10 * MIN, clock })();
      expect(t.expires.getTime()).to.equal(Math.floor(notAfter / 1000) * 1000);
      expect(decodeJwt(t.token).sub).to.equal("spiffe://example.org/nsc");
      expect(await verifyToken(t.token, me.certificate as X509Certificate)).to.equal(true);
    });

    it("caps exp at the peer certificate's expiry", async () => {
      const peerNotAfter = new Date(peerCert.validTo).getTime();
      const clock = new MockClock(peerNotAfter - 3 * MIN);
      const own = { ...(await devIdentity("nsc")) };
      const t = await createTokenGenerator(own, { maxTokenLifetimeMs: 10 * MIN, clock })({ certificate: peerCert });
      expect(t.expires.getTime()).to.equal(Math.floor(peerNotAfter / 1000) * 1000);
      // Without the peer cert the max lifetime applies.
      const t2 = await createTokenGenerator(own, { maxTokenLifetimeMs: 10 * MIN, clock })();
      expect(t2.expires.getTime()).to.equal(Math.floor((clock.now() + 10 * MIN) / 1000) * 1000);
    });

    it("signs once per audience and exp second: the same claims get the same JWT until exp, key or sub change", async () => {
      const clock = new MockClock(Date.UTC(2026, 0, 1, 12, 0, 0, 100));
      const id: Identity = { ...(await devIdentity("nsc")) };
      const gen = createTokenGenerator(id, { maxTokenLifetimeMs: 10 * MIN, clock });
      const peer = { spiffeId: "spiffe://example.org/nsmgr" };
      const first = await gen(peer);
      // ECDSA signatures are randomised: an equal string means the signed token was reused.
      await clock.advance(800);
      expect((await gen(peer)).token, "same exp second").to.equal(first.token);
      expect((await gen(peer)).expires.getTime()).to.equal(first.expires.getTime());
      const other = await gen({ spiffeId: "spiffe://example.org/forwarder" });
      expect(other.token).to.not.equal(first.token);
      expect(decodeJwt(other.token).aud).to.deep.equal(["spiffe://example.org/forwarder"]);
      expect((await gen()).token).to.not.equal(first.token);
      expect((await gen(peer)).token, "other audiences do not evict it").to.equal(first.token);
      // The next second: a fresh token with the later exp.
      await clock.advance(200);
      const next = await gen(peer);
      expect(next.token).to.not.equal(first.token);
      expect(decodeJwt(next.token).exp).to.equal((decodeJwt(first.token).exp ?? 0) + 1);
      // A rotated key (the identity is updated in place) signs at once, even within the same second.
      const rotated = await devIdentity("nsc");
      id.privateKey = rotated.privateKey;
      id.publicKey = rotated.publicKey;
      const afterRotation = await gen(peer);
      expect(afterRotation.token).to.not.equal(next.token);
      expect(await verifyToken(afterRotation.token, rotated.publicKey)).to.equal(true);
      id.spiffeId = "spiffe://nsm-ts.dev/renamed";
      expect(decodeJwt((await gen(peer)).token).sub).to.equal("spiffe://nsm-ts.dev/renamed");
    });

    it("refuses to issue once the own certificate expired, and rejects a silly max lifetime", async () => {
      const id: Identity = { ...(await devIdentity("old")), notAfter: new Date(Date.UTC(2025, 0, 1)) };
      const gen = createTokenGenerator(id, { maxTokenLifetimeMs: 10 * MIN, clock: new MockClock() });
      let err: unknown;
      await gen().catch((e: unknown) => {
        err = e;
      });
      expect(err).to.be.instanceOf(StatusError);
      expect((err as StatusError).code).to.equal(Code.FailedPrecondition);
      expect(thrown(() => createTokenGenerator(id, { maxTokenLifetimeMs: 0 })).code).to.equal(Code.InvalidArgument);
    });
  });

  describe("decode and verify", () => {
    it("decodes claims and normalises aud", async () => {
      const clock = new MockClock();
      const t = await createTokenGenerator(await devIdentity("a"), { maxTokenLifetimeMs: MIN, clock })({ spiffeId: "spiffe://x/b" });
      expect(decodeToken(t.token)).to.deep.equal({ sub: "spiffe://nsm-ts.dev/a", aud: ["spiffe://x/b"], exp: clock.now() / 1000 + 60 });
      // Results are copies: editing one does not change what the next caller sees.
      const first = decodeToken(t.token);
      first.aud.push("spiffe://evil/x");
      first.sub = "spiffe://evil/y";
      expect(decodeToken(t.token)).to.deep.equal({ sub: "spiffe://nsm-ts.dev/a", aud: ["spiffe://x/b"], exp: clock.now() / 1000 + 60 });
      const noAud = await createTokenGenerator(await devIdentity("a"), { maxTokenLifetimeMs: MIN, clock })();
      expect(decodeToken(noAud.token).aud).to.deep.equal([]);
      // A hand-made token with a single-string aud (allowed by RFC 7519).
      const enc = (o: object): string => Buffer.from(JSON.stringify(o)).toString("base64url");
      expect(decodeToken(`${enc({ alg: "none" })}.${enc({ aud: "spiffe://x/y" })}.`).aud).to.deep.equal(["spiffe://x/y"]);
    });

    it("throws Unauthenticated for an empty token and InvalidArgument for junk", () => {
      expect(thrown(() => decodeToken("")).code).to.equal(Code.Unauthenticated);
      expect(thrown(() => decodeToken("abc")).code).to.equal(Code.InvalidArgument);
      expect(thrown(() => decodeToken("a.b.c")).code).to.equal(Code.InvalidArgument);
      const enc = (o: object): string => Buffer.from(JSON.stringify(o)).toString("base64url");
      expect(thrown(() => decodeToken(`${enc({ alg: "ES256" })}.${enc({ exp: "soon" })}.x`)).message).to.contain("exp");
      expect(thrown(() => decodeToken(`${enc({ alg: "ES256" })}.${enc({ aud: [1] })}.x`)).message).to.contain("aud");
    });

    it("verifies only the signer's key; with `now` also the expiry on the injected clock", async () => {
      const clock = new MockClock();
      const a = await devIdentity("a");
      const b = await devIdentity("b");
      const t = await createTokenGenerator(a, { maxTokenLifetimeMs: 10 * MIN, clock })();
      expect(await verifyToken(t.token, a.publicKey)).to.equal(true);
      expect(await verifyToken(t.token, b.publicKey)).to.equal(false);
      expect(await verifyToken(t.token, a.publicKey, { now: clock.now() + 9 * MIN })).to.equal(true);
      expect(await verifyToken(t.token, a.publicKey, { now: clock.now() + 10 * MIN })).to.equal(false);
      // Mock time is months before real time: signature-only verification must not consult Date.now().
      await clock.advance(11 * MIN);
      expect(await verifyToken(t.token, a.publicKey)).to.equal(true);
      const [h, , s] = t.token.split(".");
      const forgedPayload = Buffer.from(JSON.stringify({ sub: "spiffe://evil/x", exp: 9e9 })).toString("base64url");
      expect(await verifyToken(`${h}.${forgedPayload}.${s}`, a.publicKey)).to.equal(false);
      expect(await verifyToken("junk", a.publicKey)).to.equal(false);
    });

    it("verifies a signature once per key: later checks of the same token skip the crypto, other keys do not", async () => {
      const clock = new MockClock();
      const a = await devIdentity("a");
      const b = await devIdentity("b");
      const t = await createTokenGenerator(a, { maxTokenLifetimeMs: 10 * MIN, clock })();
      expect(await verifyToken(t.token, a.publicKey)).to.equal(true);
      // A copy of a's public key (as a certificate's publicKey getter returns) hits the same entry.
      const copy = createPublicKey(a.publicKey.export({ type: "spki", format: "pem" }));
      const before = tokenVerifyStats();
      for (let i = 0; i < 5; i++) expect(await verifyToken(t.token, copy)).to.equal(true);
      const after = tokenVerifyStats();
      expect(after.cryptoChecks - before.cryptoChecks, "no signature check ran again").to.equal(0);
      expect(after.cacheHits - before.cacheHits).to.equal(5);
      // The cached success belongs to a's key only, and the claims are still judged at each `now`.
      expect(await verifyToken(t.token, b.publicKey)).to.equal(false);
      expect(await verifyToken(t.token, copy, { now: clock.now() + 10 * MIN })).to.equal(false);
      const [h, , sig] = t.token.split(".");
      const future = Buffer.from(JSON.stringify({ sub: "spiffe://x/y", nbf: Math.floor(clock.now() / 1000) + 60 })).toString("base64url");
      expect(await verifyToken(`${h}.${future}.${sig}`, a.publicKey), "a payload swapped under a cached signature").to.equal(false);
      const nowS = Math.floor(clock.now() / 1000);
      const notYet = await new SignJWT({ sub: "spiffe://x/y", nbf: nowS + 60, exp: nowS + 600 })
        .setProtectedHeader({ alg: "ES256" })
        .sign(a.privateKey);
      expect(await verifyToken(notYet, a.publicKey), "signature only").to.equal(true);
      expect(await verifyToken(notYet, a.publicKey, { now: clock.now() }), "not valid before nbf").to.equal(false);
      expect(await verifyToken(notYet, a.publicKey, { now: clock.now() + 61_000 })).to.equal(true);
    });
    it("refuses what is not a compact ES256 JWS: other alg, crit, padding, stray characters, a wrong-size signature or key", async () => {
      const a = await devIdentity("a");
      const t = await createTokenGenerator(a, { maxTokenLifetimeMs: 10 * MIN, clock: new MockClock() })();
      const [h, p, s] = t.token.split(".") as [string, string, string];
      const enc = (o: object): string => Buffer.from(JSON.stringify(o)).toString("base64url");
      // jose's own ES256 tokens verify (and ours under jose: the test above signs one with SignJWT).
      const viaJose = await new SignJWT({ sub: "spiffe://x/y" }).setProtectedHeader({ alg: "ES256", typ: "JWT" }).sign(a.privateKey);
      expect(await verifyToken(viaJose, a.publicKey)).to.equal(true);
      for (const [why, bad] of [
        ["alg none", `${enc({ alg: "none" })}.${p}.${s}`],
        ["alg HS256", `${enc({ alg: "HS256", typ: "JWT" })}.${p}.${s}`],
        ["crit", `${enc({ alg: "ES256", crit: ["exp"], exp: 1 })}.${p}.${s}`],
        ["b64 false", `${enc({ alg: "ES256", b64: false, crit: ["b64"] })}.${p}.${s}`],
        ["padded signature", `${h}.${p}.${s}=`],
        ["stray character", `${h}.${p}.${s.slice(0, 10)}!${s.slice(10)}`],
        ["short signature", `${h}.${p}.${s.slice(0, 40)}`],
        ["four parts", `${h}.${p}.${s}.${s}`],
        ["header not an object", `${Buffer.from("[1]").toString("base64url")}.${p}.${s}`],
        ["empty signature", `${h}.${p}.`],
      ] as const) {
        expect(await verifyToken(bad, a.publicKey), why).to.equal(false);
      }
      expect(await verifyToken(t.token, a.publicKey)).to.equal(true);
      const { publicKey: p384 } = await import("node:crypto").then((c) => c.generateKeyPairSync("ec", { namedCurve: "P-384" }));
      expect(await verifyToken(t.token, p384), "a key of another curve").to.equal(false);
    });
  });

  describe("expires format", () => {
    it("formats like Go RFC3339Nano: UTC, Z, trailing fractional zeros trimmed", () => {
      expect(formatExpires(new Date(Date.UTC(2026, 3, 7, 10, 14, 14)))).to.equal("2026-04-07T10:14:14Z");
      expect(formatExpires(new Date(Date.UTC(2026, 3, 7, 10, 14, 14, 120)))).to.equal("2026-04-07T10:14:14.12Z");
      expect(formatExpires({ seconds: 1775556854n, nanos: 123456789 })).to.equal("2026-04-07T10:14:14.123456789Z");
      expect(formatExpires({ seconds: 1775556854n, nanos: 100 })).to.equal("2026-04-07T10:14:14.0000001Z");
      expect(formatExpires({ seconds: 1775556854n, nanos: 500_000_000 })).to.equal("2026-04-07T10:14:14.5Z");
      expect(() => formatExpires(new Date(Number.NaN))).to.throw(RangeError);
    });

    it("parses any RFC 3339 time, keeping nanoseconds in the Timestamp form", () => {
      expect(parseExpires("2026-04-07T10:14:14.123456789Z")?.getTime()).to.equal(Date.UTC(2026, 3, 7, 10, 14, 14, 123));
      expect(parseExpiresTimestamp("2026-04-07T10:14:14.123456789Z")).to.deep.equal({ seconds: 1775556854n, nanos: 123456789 });
      expect(parseExpires("2026-04-07T12:14:14+02:00")?.getTime()).to.equal(Date.UTC(2026, 3, 7, 10, 14, 14));
      expect(parseExpires("2026-04-07T05:44:14.5-04:30")?.getTime()).to.equal(Date.UTC(2026, 3, 7, 10, 14, 14, 500));
      expect(parseExpires("2026-04-07t10:14:14z")?.getTime()).to.equal(Date.UTC(2026, 3, 7, 10, 14, 14));
      expect(parseExpires("2024-02-29T00:00:00Z")?.getTime()).to.equal(Date.UTC(2024, 1, 29));
      expect(parseExpires("0050-01-01T00:00:00Z")?.getUTCFullYear()).to.equal(50);
      for (const bad of [
        "",
        "2026-04-07",
        "2026-04-07T10:14:14",
        "2026-13-07T10:14:14Z",
        "2025-02-29T00:00:00Z",
        "2026-04-07T24:00:00Z",
        "2026-04-07T10:14:60Z",
        "2026-04-07T10:14:14.1234567890Z",
        "2026-04-07T10:14:14.Z",
        "2026-04-07T10:14:14+0200",
        "2026-04-07 10:14:14Z",
      ]) {
        expect(parseExpires(bad), bad).to.equal(undefined);
      }
    });

    it("round-trips Timestamps and Dates", () => {
      for (const ts of [
        { seconds: 0n, nanos: 0 },
        { seconds: 1775556854n, nanos: 1 },
        { seconds: 4102444799n, nanos: 999_999_999 },
      ]) {
        expect(parseExpiresTimestamp(formatExpires(ts))).to.deep.equal(ts);
      }
      const d = new Date(Date.UTC(2026, 11, 31, 23, 59, 59, 999));
      expect(parseExpires(formatExpires(d))?.getTime()).to.equal(d.getTime());
    });
  });

  describe("metadata", () => {
    it("writes both keys and reads them back", async () => {
      const t = { token: "a.b.c", expires: new Date(Date.UTC(2026, 3, 7, 10, 14, 14, 123)) };
      const md = tokenMetadata(t);
      expect(md).to.deep.equal({
        [TOKEN_METADATA_KEY]: "a.b.c",
        [EXPIRES_METADATA_KEY]: "2026-04-07T10:14:14.123Z",
      });
      expect(TOKEN_METADATA_KEY).to.equal("nsm-client-token");
      expect(EXPIRES_METADATA_KEY).to.equal("nsm-client-token-expires");
      const back = tokenFromMetadata({ [TOKEN_METADATA_KEY]: ["a.b.c"], [EXPIRES_METADATA_KEY]: [md[EXPIRES_METADATA_KEY] ?? ""] });
      expect(back).to.deep.equal(t);
    });

    it("accepts an upstream expiry with nanoseconds", () => {
      const back = tokenFromMetadata({ "nsm-client-token": ["t"], "nsm-client-token-expires": ["2026-04-07T10:14:14.123456789Z"] });
      expect(back?.expires.getTime()).to.equal(Date.UTC(2026, 3, 7, 10, 14, 14, 123));
    });

    it("treats the token as absent unless each key has exactly one valid value", () => {
      const exp = "2026-04-07T10:14:14Z";
      expect(tokenFromMetadata({ "nsm-client-token": ["t1", "t2"], "nsm-client-token-expires": [exp] })).to.equal(undefined);
      expect(tokenFromMetadata({ "nsm-client-token": ["t1"], "nsm-client-token-expires": [exp, exp] })).to.equal(undefined);
      expect(tokenFromMetadata({ "nsm-client-token": ["t1"] })).to.equal(undefined);
      expect(tokenFromMetadata({ "nsm-client-token-expires": [exp] })).to.equal(undefined);
      expect(tokenFromMetadata({ "nsm-client-token": [""], "nsm-client-token-expires": [exp] })).to.equal(undefined);
      expect(tokenFromMetadata({ "nsm-client-token": ["t1"], "nsm-client-token-expires": ["tomorrow"] })).to.equal(undefined);
      expect(tokenFromMetadata({})).to.equal(undefined);
    });
  });

  describe("test tokens", () => {
    it("have the fixed test subject, an hour by default, a custom lifetime on demand", async () => {
      const clock = new MockClock();
      const t = await generateTestToken({ clock });
      expect(decodeToken(t.token)).to.deep.equal({ sub: TEST_SPIFFE_ID, aud: [], exp: clock.now() / 1000 + 3600 });
      expect(await verifyToken(t.token, (await testIdentity()).publicKey)).to.equal(true);
      const short = await generateTestToken({ clock, lifetimeMs: 15 * MIN }, { spiffeId: "spiffe://test.com/server" });
      expect(short.expires.getTime()).to.equal(clock.now() + 15 * MIN);
      expect(decodeToken(short.token).aud).to.deep.equal(["spiffe://test.com/server"]);
      expect(await testIdentity()).to.equal(await testIdentity());
    });
  });
});
