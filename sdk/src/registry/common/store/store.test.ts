/**
 * The memory registry cases ported from upstream (register and find, watch, find by label with watch, slow
 * receiver, all registers/unregisters, delete event), run through the store element over the memory store.
 */
import { create } from "@bufbuild/protobuf";
import { type NetworkServiceEndpoint, NetworkServiceEndpointSchema, NetworkServiceLabelsSchema } from "@nsm-ts/api/registry";
import { MockClock } from "@nsm-ts/base/clock";
import { CallContext } from "@nsm-ts/base/context";
import { Code, isStatusError } from "@nsm-ts/base/status";
import { collect, nse, Pull } from "@nsm-ts/testing/registry";
import { expect } from "chai";
import { type RegistryHandler, registryHandler } from "../../core/index.js";
import { createMemoryStore, type RegistryStore } from "../../store/index.js";
import { newServer } from "./index.js";

describe("registry store element (memory)", () => {
  let clock: MockClock;
  let ac: AbortController;
  let st: RegistryStore<NetworkServiceEndpoint>;
  let h: RegistryHandler<NetworkServiceEndpoint>;
  let ctx: CallContext;

  beforeEach(() => {
    clock = new MockClock();
    ac = new AbortController();
    st = createMemoryStore("nse", { clock, watchBuffer: 10 });
    h = registryHandler(newServer(st));
    ctx = CallContext.create({ clock, signal: ac.signal });
  });
  afterEach(async () => {
    ac.abort();
    await st.close();
    expect(clock.pending()).to.equal(0);
  });

  const template = (init: Parameters<typeof create<typeof NetworkServiceEndpointSchema>>[1] = {}) =>
    create(NetworkServiceEndpointSchema, init);

  it("registers and finds by name", async () => {
    await h.register(ctx, nse("a", ["svc"]));
    await h.register(ctx, nse("b", ["svc"]));
    const found = await collect(h.find(ctx, { template: template({ name: "a" }), watch: false }));
    expect(found.map((r) => [r.entry.name, r.deleted])).to.deep.equal([["a", false]]);
  });

  it("streams the snapshot and then later registrations with watch", async () => {
    await h.register(ctx, nse("a", ["svc"]));
    const w = new Pull(h.find(ctx, { template: template({ networkServiceNames: ["svc"] }), watch: true }));
    expect((await w.next()).entry.name).to.equal("a");
    await h.register(ctx, nse("other", ["svc2"]));
    await h.register(ctx, nse("b", ["svc"]));
    const ev = await w.next();
    expect([ev.entry.name, ev.deleted]).to.deep.equal(["b", false]);
  });

  it("finds by label with watch", async () => {
    const q = template({ networkServiceLabels: { svc: create(NetworkServiceLabelsSchema, { labels: { app: "x" } }) } });
    const w = new Pull(h.find(ctx, { template: q, watch: true }));
    await h.register(ctx, nse("wrong-label", ["svc"], { svc: { app: "y" } }));
    await h.register(ctx, nse("right", ["svc"], { svc: { app: "x", other: "1" } }));
    expect((await w.next()).entry.name).to.equal("right");
  });

  it("a slow receiver is cut off with ResourceExhausted without blocking registrations or other watchers", async () => {
    const slow = new Pull(h.find(ctx, { template: template(), watch: true }));
    const fast = new Pull(h.find(ctx, { template: template(), watch: true }));
    const got: string[] = [];
    for (let i = 0; i < 25; i++) {
      await h.register(ctx, nse(`e${i}`, ["svc"]));
      got.push((await fast.next()).entry.name);
    }
    expect(got).to.have.length(25);
    const seen: string[] = [];
    const err = await (async () => {
      try {
        for (;;) seen.push((await slow.next()).entry.name);
      } catch (e) {
        return e;
      }
    })();
    expect(isStatusError(err, Code.ResourceExhausted), String(err)).to.equal(true);
    // Everything it did get came in order, from the start: nothing was silently skipped.
    expect(seen).to.deep.equal(got.slice(0, seen.length));
    expect(await collect(h.find(ctx, { template: template(), watch: false }))).to.have.length(25);
  });

  it("a watcher receives every register and unregister in order", async () => {
    const w = new Pull(h.find(ctx, { template: template({ networkServiceNames: ["svc"] }), watch: true }));
    const want: string[] = [];
    const got: string[] = [];
    for (let i = 0; i < 100; i++) {
      const e = nse(`e${i}`, ["svc"]);
      await h.register(ctx, e);
      await h.unregister(ctx, e);
      want.push(`+e${i}`, `-e${i}`);
      for (let k = 0; k < 2; k++) {
        const ev = await w.next();
        got.push(`${ev.deleted ? "-" : "+"}${ev.entry.name}`);
      }
    }
    expect(got).to.deep.equal(want);
  });

  it("reports an unregister as a delete event", async () => {
    const e = nse("a", ["svc"]);
    await h.register(ctx, e);
    const w = new Pull(h.find(ctx, { template: template({ name: "a" }), watch: true }));
    expect((await w.next()).deleted).to.equal(false);
    await h.unregister(ctx, e);
    const ev = await w.next();
    expect([ev.entry.name, ev.deleted]).to.deep.equal(["a", true]);
  });

  it("a Find on an already cancelled call yields nothing and does not fail", async () => {
    await h.register(ctx, nse("a", ["svc"]));
    const dead = new AbortController();
    dead.abort();
    expect(await collect(h.find(ctx.withSignal(dead.signal), { template: template(), watch: true }))).to.deep.equal([]);
  });
});
