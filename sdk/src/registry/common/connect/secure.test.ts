/**
 * connect (registry) in the secure mode: the registry client chain talks to the registry server chain over
 * mTLS with identities from X.509 certificates; the per-RPC token is addressed to the registry (its `aud`
 * is the SPIFFE ID from the server's certificate), only the registrant may unregister, and a client whose
 * certificate comes from another CA does not get through the TLS handshake.
 */
import type { NetworkServiceEndpoint } from "@nsm-ts/api/registry";
import { CallContext } from "@nsm-ts/base/context";
import { type Channel, createServer, dial, type NsmServer } from "@nsm-ts/base/grpc";
import { type Identity, loadIdentity } from "@nsm-ts/base/identity";
import { Code, StatusError } from "@nsm-ts/base/status";
import { createTokenGenerator, decodeToken, type TokenGenerator, verifyToken } from "@nsm-ts/base/token";
import { TestPki } from "@nsm-ts/testing/pki";
import { nse } from "@nsm-ts/testing/registry";
import { expect } from "chai";
import { createRegistryClient, createRegistryServer } from "../../chains/index.js";
import type { RegistryHandler } from "../../core/index.js";
import { serveRegistry } from "../../grpc/index.js";
import { createMemoryStore } from "../../store/index.js";

const TD = "spiffe://registry-secure.nsm-ts";
const gen = (id: Identity): TokenGenerator => createTokenGenerator(id, { maxTokenLifetimeMs: 600_000 });

async function rejection(p: Promise<unknown>): Promise<StatusError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err, "expected the call to fail").to.be.instanceOf(StatusError);
  return err as StatusError;
}

describe("registry connect over mTLS (secure mode)", () => {
  let pki: TestPki;
  let otherPki: TestPki;
  let registryId: Identity;
  let aliceId: Identity;
  let malloryId: Identity;
  let intruderId: Identity;
  let server: NsmServer;
  let url: string;
  let lifetime: AbortController;
  const channels: Channel[] = [];
  const seen: Array<{ op: string; spiffeId: string | undefined; token: string | undefined }> = [];

  before(async () => {
    pki = new TestPki("registry-ca");
    otherPki = new TestPki("other-ca");
    const load = (p: TestPki, name: string): Promise<Identity> =>
      loadIdentity({ ...p.leaf(name, { san: `URI:${TD}/${name}` }), caFile: p.caFile });
    registryId = await load(pki, "registry");
    aliceId = await load(pki, "alice");
    malloryId = await load(pki, "mallory");
    intruderId = await load(otherPki, "intruder");
  });
  after(() => {
    pki.remove();
    otherPki.remove();
  });

  beforeEach(async () => {
    lifetime = new AbortController();
    seen.length = 0;
    const chains = createRegistryServer({
      tokenGenerator: gen(registryId),
      nsStore: createMemoryStore("ns"),
      nseStore: createMemoryStore("nse"),
    });
    // Records what the registry learns about each caller (TLS identity, per-RPC token) before its chain runs.
    const recorder: RegistryHandler<NetworkServiceEndpoint> = {
      register: (ctx, e) => {
        seen.push({ op: "register", spiffeId: ctx.peer?.spiffeId, token: ctx.peer?.token?.token });
        return chains.nse.register(ctx, e);
      },
      find: (ctx, q) => chains.nse.find(ctx, q),
      unregister: (ctx, e) => {
        seen.push({ op: "unregister", spiffeId: ctx.peer?.spiffeId, token: ctx.peer?.token?.token });
        return chains.nse.unregister(ctx, e);
      },
    };
    server = createServer({ tls: registryId.tls });
    serveRegistry(server, { ns: chains.ns, nse: recorder });
    url = await server.listen("tcp://127.0.0.1:0");
  });

  afterEach(async () => {
    lifetime.abort();
    for (const c of channels.splice(0)) c.close();
    await server.close({ graceMs: 100 });
  });

  function registryClient(id: Identity, caFile = pki.caFile): RegistryHandler<NetworkServiceEndpoint> {
    const ch = dial(url, { tls: { ...(id.tls ?? { certFile: "", keyFile: "" }), caFile } });
    channels.push(ch);
    return createRegistryClient("nse", ch, {
      tokenGenerator: gen(id),
      signal: lifetime.signal,
      retry: { intervalMs: 50, tryTimeoutMs: 1_000 },
    });
  }

  it("addresses the per-RPC token to the registry's certificate and records the registrant", async () => {
    const alice = registryClient(aliceId);
    const ctx = CallContext.create();
    const res = await alice.register(ctx, nse("nse-1", ["ns-1"]));
    expect(res.pathIds).to.deep.equal([aliceId.spiffeId, registryId.spiffeId]);

    const reg = seen.find((s) => s.op === "register");
    expect(reg?.spiffeId).to.equal(aliceId.spiffeId);
    const claims = decodeToken(reg?.token ?? "");
    expect(claims.sub).to.equal(aliceId.spiffeId);
    expect(claims.aud).to.deep.equal([registryId.spiffeId]);
    expect(await verifyToken(reg?.token ?? "", aliceId.certificate?.publicKey ?? aliceId.publicKey)).to.equal(true);

    // Another identity of the same trust domain may not unregister alice's endpoint.
    const mallory = registryClient(malloryId);
    const err = await rejection(mallory.unregister(ctx, nse("nse-1", ["ns-1"])));
    expect(err.code).to.equal(Code.PermissionDenied);
    expect(err.message).to.contain("policy");

    await alice.unregister(ctx, nse("nse-1", ["ns-1"]));
    const unreg = seen.filter((s) => s.op === "unregister").at(-1);
    expect(decodeToken(unreg?.token ?? "").aud).to.deep.equal([registryId.spiffeId]);
  });

  it("rejects a client whose certificate comes from another CA at the TLS layer", async () => {
    const intruder = registryClient(intruderId);
    const err = await rejection(intruder.register(CallContext.create(), nse("nse-x", ["ns-1"])));
    expect([Code.Unavailable, Code.DeadlineExceeded]).to.include(err.code);
    expect(seen).to.have.length(0);
  });
});
