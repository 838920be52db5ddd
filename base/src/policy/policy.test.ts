import { X509Certificate } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { create } from "@bufbuild/protobuf";
import { type Path, PathSchema } from "@nsm-ts/api/networkservice";
import { TestPki } from "@nsm-ts/testing/pki";
import { expect } from "chai";
import { MockClock } from "../clock/index.js";
import { devIdentity, type Identity, loadIdentity } from "../identity/index.js";
import { Code, StatusError } from "../status/index.js";
import { createTokenGenerator, type TokenGenerator } from "../token/index.js";
import {
  defaultClientPolicies,
  defaultServerPolicies,
  enforce,
  type MonitorPolicyInput,
  monitorServiceConnection,
  nextTokenSigned,
  type PathPolicyInput,
  type Policy,
  prevTokenSigned,
  type RegistryPolicyInput,
  registryClientAllowed,
  tokensChained,
  tokensExpired,
  tokensValid,
} from "./index.js";

const MIN = 60_000;

async function denial(p: Promise<unknown>): Promise<StatusError> {
  try {
    await p;
  } catch (err) {
    expect(err).to.be.instanceOf(StatusError);
    expect((err as StatusError).code).to.equal(Code.PermissionDenied);
    return err as StatusError;
  }
  throw new Error("expected PermissionDenied");
}

describe("tools/policy", () => {
  let clock: MockClock;
  let nsc: Identity;
  let nsmgr: Identity;
  let nse: Identity;
  let mallory: Identity;
  const gen = (id: Identity, lifetimeMs = 10 * MIN): TokenGenerator => createTokenGenerator(id, { maxTokenLifetimeMs: lifetimeMs, clock });

  /** nsc → nsmgr → nse with correctly chained tokens: aud of each hop's token is the next hop. */
  async function threeHopPath(index: number): Promise<Path> {
    return create(PathSchema, {
      index,
      pathSegments: [
        { name: "nsc", id: "c-1", token: (await gen(nsc)({ spiffeId: nsmgr.spiffeId })).token },
        { name: "nsmgr", id: "c-2", token: (await gen(nsmgr)({ spiffeId: nse.spiffeId })).token },
        { name: "nse", id: "c-3", token: (await gen(nse)({ spiffeId: nsmgr.spiffeId })).token },
      ],
    });
  }

  function input(path: Path, peer: Identity | undefined, insecure = false): PathPolicyInput {
    return {
      path,
      peer: peer ? { spiffeId: peer.spiffeId, publicKey: peer.publicKey } : undefined,
      now: clock.now(),
      insecure,
    };
  }

  beforeEach(async () => {
    clock = new MockClock();
    [nsc, nsmgr, nse, mallory] = await Promise.all([devIdentity("nsc"), devIdentity("nsmgr"), devIdentity("nse"), devIdentity("mallory")]);
  });

  afterEach(() => {
    expect(clock.pending()).to.equal(0);
  });

  describe("path policies", () => {
    it("allow a well-formed, chained, signed path on the server and on the client", async () => {
      const path = await threeHopPath(1);
      // nsmgr (index 1) serves nsc: the previous token must be nsc's.
      await enforce(defaultServerPolicies, input(path, nsc));
      // nsc (index 0) called nsmgr: the next token must be nsmgr's.
      path.index = 0;
      await enforce(defaultClientPolicies, input(path, nsmgr));
      for (const p of [tokensValid, tokensExpired, tokensChained]) {
        expect(await p.check(input(create(PathSchema, {}), undefined)), p.name).to.equal(undefined);
      }
    });

    it("prev_token_signed denies a forged previous token (signed by another key)", async () => {
      const path = await threeHopPath(1);
      const forger: Identity = { ...mallory, spiffeId: nsc.spiffeId };
      const seg0 = path.pathSegments[0];
      if (!seg0) throw new Error("no segment");
      seg0.token = (await gen(forger)({ spiffeId: nsmgr.spiffeId })).token;
      // Claims are identical to a genuine token, so only the signature check catches it.
      expect(await tokensChained.check(input(path, nsc))).to.equal(undefined);
      const err = await denial(enforce(defaultServerPolicies, input(path, nsc)));
      expect(err.message).to.equal(
        "authorize: policy prev_token_signed denied: token of path segment 0 (nsc) is not signed by the peer spiffe://nsm-ts.dev/nsc",
      );
    });

    it("prev_token_signed denies without a peer key or without a previous segment", async () => {
      const path = await threeHopPath(1);
      expect(await prevTokenSigned.check(input(path, undefined))).to.equal("no peer certificate to verify against");
      path.index = 0;
      expect(await prevTokenSigned.check(input(path, nsc))).to.equal("path index 0 has no previous segment");
    });

    it("next_token_signed denies a forged next token and a missing next segment", async () => {
      const path = await threeHopPath(0);
      expect(await nextTokenSigned.check(input(path, nsmgr))).to.equal(undefined);
      expect(await nextTokenSigned.check(input(path, mallory))).to.match(/token of path segment 1 \(nsmgr\) is not signed by the peer/);
      const err = await denial(enforce(defaultClientPolicies, input(path, mallory), "authorize-client"));
      expect(err.message).to.match(/^authorize-client: policy next_token_signed denied: /);
      path.index = 2;
      expect(await nextTokenSigned.check(input(path, nse))).to.equal("path index 2 has no next segment");
    });

    it("verifies against a real peer certificate", async function () {
      this.timeout(30_000);
      const pki = new TestPki();
      try {
        const leaf = pki.leaf("nsc", { san: "URI:spiffe://example.org/nsc" });
        const real = await loadIdentity(leaf);
        await clock.set(Date.now()); // the certificate is valid from real now on
        const path = create(PathSchema, {
          index: 1,
          pathSegments: [
            { name: "nsc", token: (await gen(real)({ spiffeId: nsmgr.spiffeId })).token },
            { name: "nsmgr", token: (await gen(nsmgr)({ certificate: real.certificate })).token },
          ],
        });
        const certificate = new X509Certificate(readFileSync(leaf.certFile));
        const withCert: PathPolicyInput = { path, peer: { certificate }, now: clock.now(), insecure: false };
        await enforce(defaultServerPolicies, withCert);
        const otherLeaf = pki.leaf("other", { san: "URI:spiffe://example.org/other" });
        const otherCert = new X509Certificate(readFileSync(otherLeaf.certFile));
        const err = await denial(enforce(defaultServerPolicies, { ...withCert, peer: { certificate: otherCert } }));
        expect(err.message).to.contain("policy prev_token_signed denied");
      } finally {
        pki.remove();
      }
      expect(existsSync(pki.dir)).to.equal(false);
    });

    it("tokens_expired denies an expired token in any segment it is given, on the injected clock", async () => {
      const path = await threeHopPath(1);
      await clock.advance(10 * MIN - 1);
      await enforce(defaultServerPolicies, input(path, nsc));
      await clock.advance(1);
      const err = await denial(enforce(defaultServerPolicies, input(path, nsc)));
      expect(err.message).to.equal(
        "authorize: policy tokens_expired denied: token of path segment 0 (nsc) expired at 2026-01-01T00:10:00Z",
      );
    });

    it("tokens_expired checks every segment it is given (upstream rule), wants an exp and honours nbf", async () => {
      const path = await threeHopPath(2);
      const seg0 = path.pathSegments[0];
      const seg2 = path.pathSegments[2];
      if (!seg0 || !seg2) throw new Error("no segment");
      seg0.token = (await gen(nsc, 1000)({ spiffeId: nsmgr.spiffeId })).token;
      await clock.advance(2000);
      // A previous segment counts too, whatever the index (the caller's token and every earlier hop's).
      expect(await tokensExpired.check(input(path, nsmgr))).to.match(/segment 0 \(nsc\) expired at/);
      path.index = 0;
      expect(await tokensExpired.check(input(path, nsmgr))).to.match(/segment 0 \(nsc\) expired at/);
      seg0.token = (await gen(nsc)({ spiffeId: nsmgr.spiffeId })).token;
      const enc = (o: object): string => Buffer.from(JSON.stringify(o)).toString("base64url");
      seg2.token = `${enc({ alg: "ES256" })}.${enc({ sub: nse.spiffeId })}.sig`;
      path.index = 2;
      expect(await tokensExpired.check(input(path, nsmgr))).to.equal("token of path segment 2 (nse) has no exp");
      const now = Math.floor(clock.now() / 1000);
      seg2.token = `${enc({ alg: "ES256" })}.${enc({ sub: nse.spiffeId, exp: now + 60, nbf: now + 30 })}.sig`;
      expect(await tokensExpired.check(input(path, nsmgr))).to.match(/segment 2 \(nse\) is not valid before/);
      await clock.advance(30_000);
      expect(await tokensExpired.check(input(path, nsmgr))).to.equal(undefined);
    });

    it("tokens_chained denies a wrong audience and a broken chain", async () => {
      const path = await threeHopPath(1);
      const seg0 = path.pathSegments[0];
      const seg1 = path.pathSegments[1];
      if (!seg0 || !seg1) throw new Error("no segment");
      const good0 = seg0.token;
      seg0.token = (await gen(nsc)({ spiffeId: mallory.spiffeId })).token;
      const err = await denial(enforce(defaultServerPolicies, input(path, nsc)));
      expect(err.message).to.equal(
        'authorize: policy tokens_chained denied: aud ["spiffe://nsm-ts.dev/mallory"] of segment 0 (nsc) does not contain sub "spiffe://nsm-ts.dev/nsmgr" of segment 1 (nsmgr)',
      );
      // No aud at all (peer unknown) does not chain either.
      seg0.token = (await gen(nsc)()).token;
      expect(await tokensChained.check(input(path, nsc))).to.match(/^aud \[\] of segment 0/);
      // Broken further down: segment 1 names the wrong next hop.
      seg0.token = good0;
      seg1.token = (await gen(nsmgr)({ spiffeId: nsc.spiffeId })).token;
      expect(await tokensChained.check(input(path, nsc))).to.match(
        /of segment 1 \(nsmgr\) does not contain sub "spiffe:\/\/nsm-ts.dev\/nse"/,
      );
    });

    it("tokens_valid denies a segment whose token is not a JWT (or is empty)", async () => {
      const path = await threeHopPath(1);
      const seg2 = path.pathSegments[2];
      if (!seg2) throw new Error("no segment");
      seg2.token = "not-a-jwt";
      const err = await denial(enforce(defaultServerPolicies, input(path, nsc)));
      expect(err.message).to.match(
        /^authorize: policy tokens_valid denied: token of path segment 2 \(nse\) is invalid: token: malformed JWT/,
      );
      seg2.token = "";
      expect(await tokensValid.check(input(path, nsc))).to.equal("token of path segment 2 (nse) is invalid: token: missing");
    });

    it("insecure mode skips signatures and audiences but still wants valid, unexpired tokens", async () => {
      const path = await threeHopPath(1);
      const seg0 = path.pathSegments[0];
      if (!seg0) throw new Error("no segment");
      seg0.token = (await gen(mallory)({ spiffeId: "spiffe://elsewhere/x" })).token;
      await enforce(defaultServerPolicies, input(path, undefined, true));
      path.index = 0;
      await enforce(defaultClientPolicies, input(path, undefined, true));
      await clock.advance(10 * MIN);
      expect((await denial(enforce(defaultClientPolicies, input(path, undefined, true)))).message).to.contain(
        "policy tokens_expired denied",
      );
      seg0.token = "junk";
      expect((await denial(enforce(defaultClientPolicies, input(path, undefined, true)))).message).to.contain("policy tokens_valid denied");
    });
  });

  describe("enforce", () => {
    const allow: Policy<number> = { name: "allow", check: async () => undefined };
    const denyOdd: Policy<number> = { name: "even", check: async (n) => (n % 2 ? `${n} is odd` : undefined) };
    const explode: Policy<number> = {
      name: "explode",
      check: async () => {
        throw new Error("boom");
      },
    };

    it("runs pluggable policies in order and reports the first denial", async () => {
      await enforce([allow, denyOdd], 2);
      await enforce([], 1);
      expect((await denial(enforce([allow, denyOdd, explode], 3, "registry"))).message).to.equal("registry: policy even denied: 3 is odd");
    });

    it("fails closed when a policy throws", async () => {
      expect((await denial(enforce([explode, denyOdd], 3))).message).to.equal("authorize: policy explode denied: check failed: boom");
    });
  });

  describe("registry_client_allowed", () => {
    const owner = "spiffe://example.org/nse-a";
    const intruder = "spiffe://example.org/nse-b";

    it("allows a new name and the owner's refresh/unregister", async () => {
      const stored = new Map<string, string[]>([["nse-1", [owner, "spiffe://example.org/nsmgr"]]]);
      const fresh: RegistryPolicyInput = { resourceId: intruder, resourceName: "nse-2", pathIdsMap: stored };
      await enforce([registryClientAllowed], fresh, "authorize-registry");
      await enforce([registryClientAllowed], { resourceId: owner, resourceName: "nse-1", pathIdsMap: stored });
    });

    it("denies a second identity re-registering a name owned by another", async () => {
      const stored = new Map<string, string[]>([["nse-1", [owner]]]);
      const err = await denial(
        enforce([registryClientAllowed], { resourceId: intruder, resourceName: "nse-1", pathIdsMap: stored }, "authorize-registry"),
      );
      expect(err.message).to.equal(
        'authorize-registry: policy registry_client_allowed denied: "nse-1" is owned by "spiffe://example.org/nse-a", not "spiffe://example.org/nse-b"',
      );
      // Owner is path_ids[0], not any id on the path.
      const viaProxy = new Map<string, string[]>([["nse-1", ["spiffe://example.org/nsmgr", owner]]]);
      expect(await registryClientAllowed.check({ resourceId: owner, resourceName: "nse-1", pathIdsMap: viaProxy })).to.be.a("string");
      expect(await registryClientAllowed.check({ resourceId: "", resourceName: "nse-1", pathIdsMap: new Map([["nse-1", []]]) })).to.be.a(
        "string",
      );
    });
  });

  describe("service_connection (monitor)", () => {
    const peer = "spiffe://example.org/nsc";
    const map = new Map<string, string[]>([
      [peer, ["conn-1", "conn-2"]],
      ["spiffe://example.org/other", ["conn-3"]],
    ]);
    const check = (selectorConnectionIds: string[], serviceSpiffeId = peer): MonitorPolicyInput => ({
      spiffeIdConnectionMap: map,
      selectorConnectionIds,
      serviceSpiffeId,
    });

    it("allows watching own connections", async () => {
      await enforce([monitorServiceConnection], check(["conn-1"]), "authorize-monitor");
      await enforce([monitorServiceConnection], check(["conn-2", "conn-9"]));
    });

    it("denies other peers' connections, an empty selector and a peer with no connections", async () => {
      expect((await denial(enforce([monitorServiceConnection], check(["conn-3"]), "authorize-monitor"))).message).to.equal(
        'authorize-monitor: policy service_connection denied: "spiffe://example.org/nsc" owns none of the selected connections ["conn-3"]',
      );
      expect(await monitorServiceConnection.check(check([]))).to.equal("the selector names no connection id");
      expect(await monitorServiceConnection.check(check(["conn-1"], "spiffe://example.org/stranger"))).to.equal(
        '"spiffe://example.org/stranger" owns no connections',
      );
    });
  });
});
