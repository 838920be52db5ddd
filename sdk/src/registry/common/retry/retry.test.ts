/** retry (registry client): transient failures are tried again on the clock; request errors are returned at once. */
import type { NetworkServiceEndpoint } from "@nsm-ts/api/registry";
import { MockClock } from "@nsm-ts/base/clock";
import { CallContext } from "@nsm-ts/base/context";
import { Code, isStatusError, StatusError } from "@nsm-ts/base/status";
import { nse } from "@nsm-ts/testing/registry";
import { expect } from "chai";
import { type RegistryElement, registryChain, registryHandler } from "../../core/index.js";
import { newClient } from "./index.js";

function flaky(failures: number, code: Code): { el: RegistryElement<NetworkServiceEndpoint>; calls: () => number } {
  let calls = 0;
  return {
    calls: () => calls,
    el: {
      register: async (_c, e) => {
        if (calls++ < failures) throw new StatusError(code, "injected");
        return e;
      },
      find: async function* () {},
      unregister: async () => {
        if (calls++ < failures) throw new StatusError(code, "injected");
      },
    },
  };
}

describe("registry retry", () => {
  it("tries an Unavailable registry again every interval until it answers", async () => {
    const clock = new MockClock();
    const f = flaky(3, Code.Unavailable);
    const h = registryHandler(registryChain(newClient<NetworkServiceEndpoint>({ intervalMs: 500 }), f.el));
    const p = h.register(CallContext.create({ clock }), nse("a"));
    for (let i = 0; i < 3; i++) {
      await clock.untilPending(1);
      await clock.advance(500);
    }
    expect((await p).name).to.equal("a");
    expect(f.calls()).to.equal(4);
    expect(clock.pending()).to.equal(0);
  });

  it("returns request errors at once and gives up after the try timeout", async () => {
    const clock = new MockClock();
    const bad = flaky(1, Code.InvalidArgument);
    const h1 = registryHandler(registryChain(newClient<NetworkServiceEndpoint>(), bad.el));
    const e1 = await h1.register(CallContext.create({ clock }), nse("a")).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(isStatusError(e1, Code.InvalidArgument)).to.equal(true);
    expect(bad.calls()).to.equal(1);

    const down = flaky(1000, Code.Unavailable);
    const h2 = registryHandler(registryChain(newClient<NetworkServiceEndpoint>({ intervalMs: 1000, tryTimeoutMs: 3000 }), down.el));
    const p = h2.unregister(CallContext.create({ clock }), nse("a")).then(
      () => undefined,
      (e: unknown) => e,
    );
    for (let i = 0; i < 3; i++) {
      await clock.untilPending(1);
      await clock.advance(1000);
    }
    expect(isStatusError(await p, Code.Unavailable)).to.equal(true);
    expect(down.calls()).to.equal(4);
    expect(clock.pending()).to.equal(0);
  });

  it("starts no attempt after the call's own deadline, however long the try budget", async () => {
    const clock = new MockClock();
    const down = flaky(1000, Code.Unavailable);
    const h = registryHandler(registryChain(newClient<NetworkServiceEndpoint>({ intervalMs: 250, tryTimeoutMs: 15_000 }), down.el));
    const p = h.unregister(CallContext.create({ clock, deadline: clock.now() + 1000 }), nse("a")).then(
      () => undefined,
      (e: unknown) => e,
    );
    for (let i = 0; i < 3; i++) {
      await clock.untilPending(1);
      await clock.advance(250);
    }
    expect(isStatusError(await p, Code.Unavailable)).to.equal(true);
    // Attempts at 0, 250, 500 and 750 ms; the next one would start at the deadline.
    expect(down.calls()).to.equal(4);
    expect(clock.pending()).to.equal(0);
  });
});
