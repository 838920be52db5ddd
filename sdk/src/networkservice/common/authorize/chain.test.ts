/**
 * Token chaining across a 3-hop in-process chain (nsc → nsmgr → nse) with real ES256 tokens and X.509
 * identities: updatetoken and authorize on every hop, the per-RPC token handed over as the transport would.
 */

import { clone, create } from "@bufbuild/protobuf";
import { timestampMs } from "@bufbuild/protobuf/wkt";
import { type Connection, ConnectionSchema, NetworkServiceRequestSchema } from "@nsm-ts/api/networkservice";
import { MockClock } from "@nsm-ts/base/clock";
import { CallContext } from "@nsm-ts/base/context";
import { devIdentity, type Identity, loadIdentity } from "@nsm-ts/base/identity";
import { Code, isStatusError } from "@nsm-ts/base/status";
import { createTokenGenerator, decodeToken, type TokenGenerator, verifyToken } from "@nsm-ts/base/token";
import { type Counter, newCounter } from "@nsm-ts/testing/elements";
import { TestPki } from "@nsm-ts/testing/pki";
import { expect } from "chai";
import { chain, handler, type NetworkServiceElement, type NetworkServiceHandler } from "../../core/index.js";
import * as begin from "../begin/index.js";
import * as metadata from "../metadata/index.js";
import * as timeout from "../timeout/index.js";
import * as trimpath from "../trimpath/index.js";
import * as updatepath from "../updatepath/index.js";
import * as updatetoken from "../updatetoken/index.js";
import * as authorize from "./index.js";

const LIFETIME_MS = 15 * 60_000;

interface Hop {
  name: string;
  id: Identity;
  gen: TokenGenerator;
}

/**
 * The transport between two hops: the caller's per-RPC token addressed to the server (what `tools/grpc`
 * sends as nsm-client-token), the caller's identity as the server's peer, a copy of the message as on the
 * wire, and the server's identity reported back to the client's authorize.
 */
function wire(from: Hop, to: Hop, server: NetworkServiceHandler, perRpc: TokenGenerator = from.gen): NetworkServiceElement {
  const serverCtx = async (ctx: CallContext): Promise<CallContext> => {
    const token = await perRpc({ spiffeId: to.id.spiffeId, ...(to.id.certificate ? { certificate: to.id.certificate } : {}) });
    return CallContext.create({
      clock: ctx.clock,
      peer: { spiffeId: from.id.spiffeId, ...(from.id.certificate ? { certificate: from.id.certificate } : {}), token },
    });
  };
  const report = (ctx: CallContext): void => {
    const slot = authorize.serverPeerKey.get(ctx);
    if (slot) slot.peer = { spiffeId: to.id.spiffeId, ...(to.id.certificate ? { certificate: to.id.certificate } : {}) };
  };
  return {
    name: `wire-${from.name}-${to.name}`,
    async request(ctx, req) {
      const out = await server.request(await serverCtx(ctx), clone(NetworkServiceRequestSchema, req));
      report(ctx);
      return out;
    },
    async close(ctx, conn) {
      await server.close(await serverCtx(ctx), clone(ConnectionSchema, conn));
    },
  };
}

describe("token chaining through updatetoken + authorize (3 hops)", function () {
  this.timeout(30_000);
  let pki: TestPki;
  let clock: MockClock;
  let nsc: Hop;
  let nsmgr: Hop;
  let nse: Hop;
  let endpointCounter: Counter;

  before(async () => {
    pki = new TestPki();
  });
  after(() => pki.remove());

  const hop = async (name: string, c: MockClock): Promise<Hop> => {
    const files = pki.leaf(name, { san: `URI:spiffe://test.example/${name}` });
    const id = await loadIdentity(files);
    return { name, id, gen: createTokenGenerator(id, { maxTokenLifetimeMs: LIFETIME_MS, clock: c }) };
  };

  beforeEach(async () => {
    clock = new MockClock(Date.now());
    nsc = await hop("nsc", clock);
    nsmgr = await hop("nsmgr", clock);
    nse = await hop("nse", clock);
    endpointCounter = newCounter("endpoint");
  });
  afterEach(() => {
    expect(clock.pending(), "timers left on the mock clock").to.equal(0);
  });

  function build(opts: { insecure?: boolean; nseGen?: TokenGenerator; nscPerRpc?: TokenGenerator; nsmgrPerRpc?: TokenGenerator } = {}) {
    const insecure = opts.insecure ?? false;
    const nseHop = { ...nse, gen: opts.nseGen ?? nse.gen };
    const endpoint = handler(
      chain(
        updatepath.newServer("nse"),
        begin.newServer(),
        metadata.newServer(),
        updatetoken.newServer(nseHop.gen),
        authorize.newServer({ insecure }),
        timeout.newServer(),
        trimpath.newServer(),
        endpointCounter,
      ),
    );
    const manager = handler(
      chain(
        updatepath.newServer("nsmgr"),
        begin.newServer(),
        metadata.newServer(),
        updatetoken.newServer(nsmgr.gen),
        authorize.newServer({ insecure }),
        timeout.newServer(),
        trimpath.newServer(),
        trimpath.newClient(),
        updatetoken.newClient(nsmgr.gen),
        authorize.newClient({ insecure }),
        wire(nsmgr, nseHop, endpoint, opts.nsmgrPerRpc),
      ),
    );
    return handler(
      chain(
        updatepath.newClient("nsc"),
        begin.newClient(),
        metadata.newClient(),
        updatetoken.newClient(nsc.gen),
        authorize.newClient({ insecure }),
        wire(nsc, nsmgr, manager, opts.nscPerRpc),
      ),
    );
  }

  const request = () => create(NetworkServiceRequestSchema, { connection: { id: "conn-1", networkService: "ns" } });

  async function expectDenied(p: Promise<unknown>, policy: string): Promise<void> {
    try {
      await p;
    } catch (err) {
      expect(isStatusError(err, Code.PermissionDenied), String(err)).to.equal(true);
      expect((err as Error).message).to.contain(`policy ${policy} denied`);
      return;
    }
    expect.fail(`expected PermissionDenied by ${policy}`);
  }

  it("returns 3 segments whose tokens verify against each hop's certificate and chain aud → sub", async () => {
    const client = build();
    const conn: Connection = await client.request(CallContext.create({ clock }), request());
    const segs = conn.path?.pathSegments ?? [];
    expect(segs.map((s) => s.name)).to.deep.equal(["nsc", "nsmgr", "nse"]);
    const hops = [nsc, nsmgr, nse];
    for (let i = 0; i < 3; i++) {
      const seg = segs[i];
      const h = hops[i] as Hop;
      expect(seg?.expires, `segment ${i} expires`).to.not.equal(undefined);
      expect(timestampMs(seg?.expires ?? ({ seconds: 0n, nanos: 0 } as never))).to.be.at.most(clock.now() + LIFETIME_MS);
      expect(await verifyToken(seg?.token ?? "", h.id.certificate ?? h.id.publicKey), `segment ${i} signed by ${h.name}`).to.equal(true);
      expect(decodeToken(seg?.token ?? "").sub).to.equal(h.id.spiffeId);
    }
    expect(decodeToken(segs[0]?.token ?? "").aud).to.include(nsmgr.id.spiffeId);
    expect(decodeToken(segs[1]?.token ?? "").aud).to.include(nse.id.spiffeId);
    expect(endpointCounter.requests).to.equal(1);

    // A refresh passes the same checks; Close reaches the endpoint once.
    const refreshed = await client.request(CallContext.create({ clock }), create(NetworkServiceRequestSchema, { connection: conn }));
    expect(refreshed.path?.pathSegments).to.have.length(3);
    expect(endpointCounter.requests).to.equal(2);
    await client.close(CallContext.create({ clock }), refreshed);
    expect(endpointCounter.closes).to.equal(1);
  });

  it("a forged signature on the previous hop's token is denied by prev_token_signed", async () => {
    const forger = await devIdentity("forger");
    const forged = createTokenGenerator(forger, { maxTokenLifetimeMs: LIFETIME_MS, clock });
    const client = build({ nsmgrPerRpc: forged });
    await expectDenied(client.request(CallContext.create({ clock }), request()), "prev_token_signed");
    expect(endpointCounter.requests).to.equal(0);
  });

  it("an expired token is denied by tokens_expired before the endpoint acts on it", async () => {
    // The endpoint signs with a clock 30 min behind: its own 15-min token is already expired.
    const past = new MockClock(clock.now() - 2 * LIFETIME_MS);
    const client = build({ nseGen: createTokenGenerator(nse.id, { maxTokenLifetimeMs: LIFETIME_MS, clock: past }) });
    await expectDenied(client.request(CallContext.create({ clock }), request()), "tokens_expired");
    expect(endpointCounter.requests).to.equal(0);
  });

  it("a token addressed to the wrong audience is denied by tokens_chained", async () => {
    const wrongAud: TokenGenerator = () => nsc.gen({ spiffeId: "spiffe://test.example/someone-else" });
    const client = build({ nscPerRpc: wrongAud });
    await expectDenied(client.request(CallContext.create({ clock }), request()), "tokens_chained");
    expect(endpointCounter.requests).to.equal(0);
  });

  it("insecure dev mode: ephemeral identities without certificates pass; secure mode denies them", async () => {
    for (const h of [nsc, nsmgr, nse]) {
      h.id = await devIdentity(h.name);
      h.gen = createTokenGenerator(h.id, { maxTokenLifetimeMs: LIFETIME_MS, clock });
    }
    const insecure = build({ insecure: true });
    const conn = await insecure.request(CallContext.create({ clock }), request());
    expect(conn.path?.pathSegments).to.have.length(3);
    await insecure.close(CallContext.create({ clock }), conn);
    await expectDenied(build().request(CallContext.create({ clock }), request()), "prev_token_signed");
  });
});
