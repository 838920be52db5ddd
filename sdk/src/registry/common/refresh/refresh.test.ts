/** refresh cases ported from upstream: refreshed twice, stops on unregister, asks for the right expiration. */
import { timestampDate, timestampFromMs } from "@bufbuild/protobuf/wkt";
import type { NetworkServiceEndpoint } from "@nsm-ts/api/registry";
import { MockClock } from "@nsm-ts/base/clock";
import { CallContext } from "@nsm-ts/base/context";
import { Code, StatusError } from "@nsm-ts/base/status";
import { nse } from "@nsm-ts/testing/registry";
import { expect } from "chai";
import { type RegistryElement, registryChain, registryHandler } from "../../core/index.js";
import { newClient } from "./index.js";

/** A fake registry: answers Register with expiration = now + `periodMs` (or the requested one if earlier). */
function fakeRegistry(clock: MockClock, periodMs: number, log: { at: number; req: NetworkServiceEndpoint }[], fail?: () => boolean) {
  const el: RegistryElement<NetworkServiceEndpoint> = {
    async register(_ctx, e) {
      log.push({ at: clock.now(), req: e });
      if (fail?.()) throw new StatusError(Code.Unavailable, "injected");
      let exp = clock.now() + periodMs;
      if (e.expirationTime) exp = Math.min(exp, timestampDate(e.expirationTime).getTime());
      return { ...e, expirationTime: timestampFromMs(exp) };
    },
    find: async function* () {},
    unregister: async () => {},
  };
  return el;
}

describe("registry refresh", () => {
  let clock: MockClock;
  let ctx: CallContext;
  beforeEach(() => {
    clock = new MockClock();
    ctx = CallContext.create({ clock });
  });
  afterEach(() => {
    expect(clock.pending()).to.equal(0);
  });

  it("refreshes at two thirds of the remaining time, again and again", async () => {
    const calls: { at: number; req: NetworkServiceEndpoint }[] = [];
    const h = registryHandler(registryChain(newClient<NetworkServiceEndpoint>(), fakeRegistry(clock, 3000, calls)));
    const t0 = clock.now();
    await h.register(ctx, nse("a"));
    await clock.advance(1999);
    expect(calls).to.have.length(1);
    await clock.advance(1);
    expect(calls.map((c) => c.at - t0)).to.deep.equal([0, 2000]);
    await clock.advance(2000);
    expect(calls.map((c) => c.at - t0)).to.deep.equal([0, 2000, 4000]);
    await h.unregister(ctx, nse("a"));
  });

  it("stops on unregister", async () => {
    const calls: { at: number; req: NetworkServiceEndpoint }[] = [];
    const h = registryHandler(registryChain(newClient<NetworkServiceEndpoint>(), fakeRegistry(clock, 3000, calls)));
    await h.register(ctx, nse("a"));
    await clock.advance(2000);
    await h.unregister(ctx, nse("a"));
    expect(clock.pending()).to.equal(0);
    await clock.advance(60_000);
    expect(calls).to.have.length(2);
  });

  it("asks each refresh for the originally requested duration from the refresh time", async () => {
    const calls: { at: number; req: NetworkServiceEndpoint }[] = [];
    const h = registryHandler(registryChain(newClient<NetworkServiceEndpoint>(), fakeRegistry(clock, 60_000, calls)));
    const req = nse("a");
    req.expirationTime = timestampFromMs(clock.now() + 1500);
    await h.register(ctx, req);
    await clock.advance(1000);
    await clock.advance(1000);
    expect(calls.length).to.be.greaterThan(2);
    for (const c of calls) expect(timestampDate(c.req.expirationTime!).getTime() - c.at).to.equal(1500);
    await h.unregister(ctx, nse("a"));
  });

  it("retries a failed refresh until the expiration, then gives up", async () => {
    const calls: { at: number; req: NetworkServiceEndpoint }[] = [];
    let failing = false;
    const h = registryHandler(
      registryChain(
        newClient<NetworkServiceEndpoint>({ retryIntervalMs: 200 }),
        fakeRegistry(clock, 3000, calls, () => failing),
      ),
    );
    await h.register(ctx, nse("a"));
    failing = true;
    await clock.advance(3000);
    // At 2000 and then every 200 ms while the next attempt still falls before the expiration at 3000.
    expect(calls.map((c) => c.at - calls[0]!.at)).to.deep.equal([0, 2000, 2200, 2400, 2600, 2800]);
    expect(clock.pending()).to.equal(0);
  });
});
