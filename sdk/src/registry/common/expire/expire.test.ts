/**
 * expire cases ported from upstream: the default expiration, a refresh keeping the entry, the caller's token
 * expiry capping it, a requested shorter expiration, and an entry still expiring when an Unregister failed.
 */
import { create } from "@bufbuild/protobuf";
import { timestampDate, timestampFromMs } from "@bufbuild/protobuf/wkt";
import { type NetworkServiceEndpoint, NetworkServiceEndpointSchema } from "@nsm-ts/api/registry";
import { MockClock } from "@nsm-ts/base/clock";
import { CallContext } from "@nsm-ts/base/context";
import { Code, StatusError } from "@nsm-ts/base/status";
import { collect, nse, Pull } from "@nsm-ts/testing/registry";
import { expect } from "chai";
import { type RegistryElement, type RegistryHandler, registryChain, registryHandler } from "../../core/index.js";
import { createMemoryStore, type RegistryStore } from "../../store/index.js";
import * as store from "../store/index.js";
import { DEFAULT_EXPIRE_PERIOD_MS, newServer } from "./index.js";

describe("registry expire", () => {
  let clock: MockClock;
  let ac: AbortController;
  let st: RegistryStore<NetworkServiceEndpoint>;
  let ctx: CallContext;

  beforeEach(() => {
    clock = new MockClock();
    ac = new AbortController();
    st = createMemoryStore("nse", { clock });
    ctx = CallContext.create({ clock, signal: ac.signal });
  });
  afterEach(async () => {
    ac.abort();
    await st.close();
    expect(clock.pending()).to.equal(0);
  });

  const all = (h: RegistryHandler<NetworkServiceEndpoint>) =>
    collect(h.find(ctx, { template: create(NetworkServiceEndpointSchema), watch: false })).then((r) => r.map((x) => x.entry.name));

  it("defaults to now + 1 minute and removes the entry with a delete event when it passes", async () => {
    const h = registryHandler(registryChain(newServer<NetworkServiceEndpoint>(), store.newServer(st)));
    const res = await h.register(ctx, nse("a", ["svc"]));
    expect(timestampDate(res.expirationTime!).getTime()).to.equal(clock.now() + DEFAULT_EXPIRE_PERIOD_MS);
    const w = new Pull(h.find(ctx, { template: create(NetworkServiceEndpointSchema, { name: "a" }), watch: true }));
    await w.next();
    await clock.advance(DEFAULT_EXPIRE_PERIOD_MS - 1);
    expect(await all(h)).to.deep.equal(["a"]);
    await clock.advance(1);
    const ev = await w.next();
    expect([ev.entry.name, ev.deleted]).to.deep.equal(["a", true]);
    expect(await all(h)).to.deep.equal([]);
  });

  it("a refresh before the expiration keeps the entry for another period", async () => {
    const h = registryHandler(registryChain(newServer<NetworkServiceEndpoint>({ expirePeriodMs: 3000 }), store.newServer(st)));
    await h.register(ctx, nse("a"));
    await clock.advance(2000);
    await h.register(ctx, nse("a"));
    await clock.advance(2000);
    expect(await all(h)).to.deep.equal(["a"]);
    await clock.advance(1000);
    expect(await all(h)).to.deep.equal([]);
  });

  it("uses a shorter requested expiration and the caller's token expiry", async () => {
    const h = registryHandler(registryChain(newServer<NetworkServiceEndpoint>(), store.newServer(st)));
    const req = nse("a");
    req.expirationTime = timestampFromMs(clock.now() + 5000);
    expect(timestampDate((await h.register(ctx, req)).expirationTime!).getTime()).to.equal(clock.now() + 5000);
    const withToken = ctx.withPeer({ token: { token: "t", expires: new Date(clock.now() + 2000) } });
    expect(timestampDate((await h.register(withToken, nse("b"))).expirationTime!).getTime()).to.equal(clock.now() + 2000);
    await clock.advance(2000);
    expect(await all(h)).to.deep.equal(["a"]);
    await clock.advance(3000);
    expect(await all(h)).to.deep.equal([]);
  });

  it("an entry whose Unregister failed still expires", async () => {
    const failing: RegistryElement<NetworkServiceEndpoint> = {
      register: (c, e, n) => n.register(c, e),
      find: (c, q, n) => n.find(c, q),
      unregister: async () => {
        throw new StatusError(Code.Unavailable, "injected unregister failure");
      },
    };
    const h = registryHandler(registryChain(newServer<NetworkServiceEndpoint>({ expirePeriodMs: 1000 }), failing, store.newServer(st)));
    await h.register(ctx, nse("a"));
    let err: unknown;
    await h.unregister(ctx, nse("a")).catch((e: unknown) => (err = e));
    expect(err).to.be.instanceOf(StatusError);
    expect(await all(h)).to.deep.equal(["a"]);
    await clock.advance(1000);
    expect(await all(h)).to.deep.equal([]);
  });

  it("leaves network services alone", async () => {
    const nsStore = createMemoryStore("ns", { clock });
    try {
      const h = registryHandler(registryChain(newServer(), store.newServer(nsStore)));
      const { create: c } = await import("@bufbuild/protobuf");
      const { NetworkServiceSchema } = await import("@nsm-ts/api/registry");
      await h.register(ctx, c(NetworkServiceSchema, { name: "svc" }));
      await clock.advance(10 * DEFAULT_EXPIRE_PERIOD_MS);
      expect(await nsStore.get("svc")).to.not.equal(undefined);
    } finally {
      await nsStore.close();
    }
  });
});
