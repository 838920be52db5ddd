import { create } from "@bufbuild/protobuf";
import { type Path, PathSchema } from "@nsm-ts/api/networkservice";
import { expect } from "chai";
import { MockClock } from "../clock/index.js";
import { ephemeralIdentity, type Identity } from "../identity/index.js";
import { createTokenGenerator } from "../token/index.js";
import { defaultServerPolicies, enforce, firstSegmentCaller, isMeshHopId, type PathPolicyInput, spiffeIdMatcher } from "./index.js";

const TD = "spiffe://example.org";

describe("tools/policy first_segment_caller", () => {
  let clock: MockClock;
  const ids: Record<string, Identity> = {};
  before(async () => {
    for (const n of ["alice", "mallory", "nsmgr-node1", "forwarder-vpp", "nse"]) ids[n] = await ephemeralIdentity(`${TD}/${n}`);
  });
  beforeEach(() => {
    clock = new MockClock();
  });
  afterEach(() => expect(clock.pending()).to.equal(0));

  const who = (n: string): Identity => ids[n] ?? (undefined as never);
  /** A path of segments signed by `signers` in order (each addressed to the next), we at index `signers.length`. */
  async function pathOf(signers: Identity[]): Promise<Path> {
    const segs = [];
    for (const [i, s] of signers.entries()) {
      const next = signers[i + 1] ?? who("nse");
      const token = (await createTokenGenerator(s, { maxTokenLifetimeMs: 60_000, clock })({ spiffeId: next.spiffeId })).token;
      segs.push({ name: `hop-${i}`, id: `id-${i}`, token });
    }
    const own = await createTokenGenerator(who("nse"), { maxTokenLifetimeMs: 60_000, clock })({ spiffeId: signers.at(-1)?.spiffeId ?? "" });
    segs.push({ name: "nse", id: "id-nse", token: own.token });
    return create(PathSchema, { index: signers.length, pathSegments: segs });
  }
  const input = (path: Path, peer: Identity, extra: Partial<PathPolicyInput> = {}): PathPolicyInput => ({
    path,
    peer: { spiffeId: peer.spiffeId, publicKey: peer.publicKey },
    now: clock.now(),
    insecure: false,
    ...extra,
  });

  it("allows a caller whose own segment is the first, and a trusted hop forwarding someone else's path", async () => {
    expect(await firstSegmentCaller.check(input(await pathOf([who("alice")]), who("alice")))).to.equal(undefined);
    const forwarded = await pathOf([who("alice"), who("nsmgr-node1"), who("forwarder-vpp")]);
    await enforce(defaultServerPolicies, input(forwarded, who("forwarder-vpp")));
    // We are the first segment: nothing is claimed (prev_token_signed refuses that path on its own).
    expect(await firstSegmentCaller.check(input(create(PathSchema, { pathSegments: [{ name: "nse" }] }), who("alice")))).to.equal(
      undefined,
    );
  });

  it("denies a path that began with another workload from a peer that is not a trusted hop", async () => {
    const path = await pathOf([who("alice"), who("mallory")]);
    expect(await firstSegmentCaller.check(input(path, who("mallory")))).to.equal(
      `path segment 0 (hop-0) is not the caller's own: "${TD}/mallory" sent 1 segment before its own and is not a trusted hop`,
    );
    // The same path is fine once mallory is configured as a trusted hop (NSM_TRUSTED_HOPS).
    const trusted = spiffeIdMatcher([`${TD}/mall*`]);
    expect(await firstSegmentCaller.check(input(path, who("mallory"), { isTrustedHop: trusted }))).to.equal(undefined);
  });

  it("denies a caller's segment whose token names someone other than the peer, trusted hop or not", async () => {
    const forged = { ...who("mallory"), spiffeId: who("alice").spiffeId };
    expect(await firstSegmentCaller.check(input(await pathOf([forged]), who("mallory")))).to.equal(
      `token of path segment 0 (hop-0) names "${TD}/alice", not the peer "${TD}/mallory"`,
    );
    const path = await pathOf([who("alice"), { ...who("nsmgr-node1"), spiffeId: `${TD}/forwarder-vpp` }]);
    expect(await firstSegmentCaller.check(input(path, who("nsmgr-node1")))).to.match(/^token of path segment 1 \(hop-1\) names/);
    const broken = await pathOf([who("alice")]);
    const seg = broken.pathSegments[0];
    if (seg) seg.token = "junk";
    expect(await firstSegmentCaller.check(input(broken, who("alice")))).to.match(/^token of path segment 0 \(hop-0\) is invalid: /);
  });

  it("denies a peer without a SPIFFE ID and passes everything in the insecure dev mode", async () => {
    const path = await pathOf([who("alice"), who("mallory")]);
    expect(await firstSegmentCaller.check({ path, now: clock.now(), insecure: false })).to.equal("the peer has no SPIFFE ID");
    expect(await firstSegmentCaller.check(input(path, who("mallory"), { insecure: true }))).to.equal(undefined);
  });

  it("isMeshHopId: the last path component starts with nsmgr or forwarder", () => {
    for (const id of [
      "spiffe://td/nsmgr",
      "spiffe://td/ns/nsm-system/sa/nsmgr-sa",
      "spiffe://td/forwarder-vpp",
      "spiffe://td/forwarder-1",
    ]) {
      expect(isMeshHopId(id), id).to.equal(true);
    }
    for (const id of ["spiffe://td/alice", "spiffe://td/nsmgr/alice", "spiffe://td/my-nsmgr", "spiffe://nsmgr", "nsmgr"]) {
      expect(isMeshHopId(id), id).to.equal(false);
    }
    expect(spiffeIdMatcher(["spiffe://td/a.b*"])("spiffe://td/aXb")).to.equal(false);
  });
});
