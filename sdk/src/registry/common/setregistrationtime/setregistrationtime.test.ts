/** setregistrationtime: the first registration time is set once and kept across refreshes. */
import { timestampDate } from "@bufbuild/protobuf/wkt";
import type { NetworkServiceEndpoint } from "@nsm-ts/api/registry";
import { MockClock } from "@nsm-ts/base/clock";
import { CallContext } from "@nsm-ts/base/context";
import { nse } from "@nsm-ts/testing/registry";
import { expect } from "chai";
import { registryChain, registryHandler } from "../../core/index.js";
import { createMemoryStore } from "../../store/index.js";
import * as store from "../store/index.js";
import { newServer } from "./index.js";

describe("registry setregistrationtime", () => {
  it("keeps the first registration time across refreshes that do not send it", async () => {
    const clock = new MockClock();
    const st = createMemoryStore("nse", { clock });
    try {
      for (const el of [newServer<NetworkServiceEndpoint>(), newServer<NetworkServiceEndpoint>({ lookup: (n) => st.get(n) })]) {
        const h = registryHandler(registryChain(el, store.newServer(st)));
        const ctx = CallContext.create({ clock });
        const t0 = clock.now();
        expect(timestampDate((await h.register(ctx, nse("a"))).initialRegistrationTime!).getTime()).to.equal(t0);
        await clock.advance(5000);
        expect(timestampDate((await h.register(ctx, nse("a"))).initialRegistrationTime!).getTime()).to.equal(t0);
        await h.unregister(ctx, nse("a"));
        expect(timestampDate((await h.register(ctx, nse("a"))).initialRegistrationTime!).getTime()).to.equal(clock.now());
        await h.unregister(ctx, nse("a"));
      }
    } finally {
      await st.close();
    }
  });
});
