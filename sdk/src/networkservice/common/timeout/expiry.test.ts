/**
 * refresh + timeout across a 3-hop in-process chain (nsc → nsmgr → nse) with real tokens (dev identities,
 * insecure mode): a refreshing client keeps its connection for hours; one that stops refreshing is closed
 * by every server's timeout once its token expires.
 */

import { clone, create } from "@bufbuild/protobuf";
import { ConnectionSchema, NetworkServiceRequestSchema } from "@nsm-ts/api/networkservice";
import { MockClock } from "@nsm-ts/base/clock";
import { CallContext } from "@nsm-ts/base/context";
import { devIdentity } from "@nsm-ts/base/identity";
import { createTokenGenerator, type TokenGenerator } from "@nsm-ts/base/token";
import { Tracker } from "@nsm-ts/testing/e2e";
import { type Counter, newCounter } from "@nsm-ts/testing/elements";
import { expect } from "chai";
import { chain, handler, type NetworkServiceElement, type NetworkServiceHandler } from "../../core/index.js";
import * as authorize from "../authorize/index.js";
import * as begin from "../begin/index.js";
import * as metadata from "../metadata/index.js";
import * as refresh from "../refresh/index.js";
import * as updatepath from "../updatepath/index.js";
import * as updatetoken from "../updatetoken/index.js";
import * as timeout from "./index.js";

const MIN = 60_000;
const LIFETIME_MS = 15 * MIN;

/** The transport: per-RPC token for the server, the caller's identity as the server's peer, a wire copy. */
function wire(fromId: string, gen: TokenGenerator, toId: string, server: NetworkServiceHandler): NetworkServiceElement {
  const serverCtx = async (ctx: CallContext): Promise<CallContext> =>
    CallContext.create({ clock: ctx.clock, peer: { spiffeId: fromId, token: await gen({ spiffeId: toId }) } });
  return {
    name: "wire",
    request: async (ctx, req) => server.request(await serverCtx(ctx), clone(NetworkServiceRequestSchema, req)),
    close: async (ctx, conn) => server.close(await serverCtx(ctx), clone(ConnectionSchema, conn)),
  };
}

describe("refresh and timeout across three hops", () => {
  let clock: MockClock;
  let nse: Counter;
  let nsmgr: Counter;
  let atNse: Tracker;
  let atNsmgr: Tracker;

  beforeEach(() => {
    clock = new MockClock();
    atNse = new Tracker();
    atNsmgr = new Tracker();
    nse = newCounter("nse");
    nsmgr = newCounter("nsmgr");
  });
  afterEach(() => expect(clock.pending(), "timers left on the mock clock").to.equal(0));

  async function build(withRefresh: boolean): Promise<NetworkServiceHandler> {
    const [c, m, e] = await Promise.all([devIdentity("nsc"), devIdentity("nsmgr"), devIdentity("nse")]);
    const gen = (id: typeof c) => createTokenGenerator(id, { maxTokenLifetimeMs: LIFETIME_MS, clock });
    const server = (name: string, g: TokenGenerator, counter: Counter, tracker: Tracker, ...rest: NetworkServiceElement[]) =>
      chain(
        updatepath.newServer(name),
        begin.newServer(),
        metadata.newServer(),
        updatetoken.newServer(g),
        authorize.newServer({ insecure: true }),
        timeout.newServer(),
        counter,
        // After begin: events (timeout closes) re-enter the chain at begin.
        tracker.element,
        ...rest,
      );
    const endpoint = handler(server("nse", gen(e), nse, atNse));
    const manager = handler(
      server(
        "nsmgr",
        gen(m),
        nsmgr,
        atNsmgr,
        updatetoken.newClient(gen(m)),
        authorize.newClient({ insecure: true }),
        wire(m.spiffeId, gen(m), e.spiffeId, endpoint),
      ),
    );
    return handler(
      chain(
        updatepath.newClient("nsc"),
        begin.newClient(),
        metadata.newClient(),
        ...(withRefresh ? [refresh.newClient()] : []),
        updatetoken.newClient(gen(c)),
        authorize.newClient({ insecure: true }),
        wire(c.spiffeId, gen(c), m.spiffeId, manager),
      ),
    );
  }

  const request = () => create(NetworkServiceRequestSchema, { connection: { id: "conn-1", networkService: "ns" } });

  it("a refreshing client keeps its connection for hours; Close then reaches the endpoint once", async () => {
    const client = await build(true);
    const conn = await client.request(CallContext.create({ clock }), request());
    expect(conn.path?.pathSegments).to.have.length(3);
    // 3 segments, index 0: refresh at 0.2 × 15 min = 3 min, so 40 refreshes in 2 hours. Token signing is
    // real async work, so wait for each refresh to land before moving the clock on.
    for (let i = 0; i < 40; i++) {
      const refreshed = atNse.next("request");
      await clock.advance(3 * MIN);
      await refreshed;
    }
    expect(nse.closes).to.equal(0);
    expect(nsmgr.closes).to.equal(0);
    expect(nse.requests).to.equal(41);
    expect(nse.uniqueRequests).to.equal(1);
    await client.close(CallContext.create({ clock }), conn);
    expect(nsmgr.closes).to.equal(1);
    expect(nse.closes).to.equal(1);
  });

  it("a client that stops refreshing is closed by the servers' timeouts when its token expires", async () => {
    const client = await build(false);
    const conn = await client.request(CallContext.create({ clock }), request());
    await clock.advance(LIFETIME_MS - 1000);
    expect(nse.closes).to.equal(0);
    const closed = Promise.all([atNsmgr.next("close"), atNse.next("close")]);
    await clock.advance(1000);
    await closed;
    expect(nsmgr.closes).to.equal(1);
    expect(nse.closes).to.equal(1);
    // The client's late Close finds nothing left to close.
    await client.close(CallContext.create({ clock }), conn);
    expect(nsmgr.closes).to.equal(1);
    expect(nse.closes).to.equal(1);
  });
});
