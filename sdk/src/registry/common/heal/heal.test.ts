/** heal (registry client): re-register after a delete event and after a broken watch; stop on unregister. */
import type { NetworkServiceEndpoint } from "@nsm-ts/api/registry";
import { MockClock } from "@nsm-ts/base/clock";
import { CallContext } from "@nsm-ts/base/context";
import { Code, StatusError } from "@nsm-ts/base/status";
import { nse } from "@nsm-ts/testing/registry";
import { expect } from "chai";
import { type RegistryElement, registryChain, registryHandler } from "../../core/index.js";
import { createMemoryStore, type RegistryStore } from "../../store/index.js";
import * as store from "../store/index.js";
import { newClient } from "./index.js";

describe("registry heal", () => {
  let clock: MockClock;
  let st: RegistryStore<NetworkServiceEndpoint>;
  let registers: number;
  let breakWatch: (() => void) | undefined;
  let h: ReturnType<typeof registryHandler<NetworkServiceEndpoint>>;
  const ctx = () => CallContext.create({ clock });

  beforeEach(() => {
    clock = new MockClock();
    st = createMemoryStore("nse", { clock });
    registers = 0;
    // Counts registrations and lets a test break the current watch stream.
    const tap: RegistryElement<NetworkServiceEndpoint> = {
      register: (c, e, n) => {
        registers++;
        return n.register(c, e);
      },
      async *find(c, q, n) {
        const ac = new AbortController();
        const broken = new Promise<never>((_, reject) => {
          breakWatch = () => {
            ac.abort();
            reject(new StatusError(Code.Unavailable, "injected stream break"));
          };
        });
        broken.catch(() => undefined);
        const it = n.find(c.withSignal(AbortSignal.any([c.signal, ac.signal])), q)[Symbol.asyncIterator]();
        for (;;) {
          const r = await Promise.race([it.next(), broken]);
          if (r.done === true) return;
          yield r.value;
        }
      },
      unregister: (c, e, n) => n.unregister(c, e),
    };
    h = registryHandler(registryChain(newClient<NetworkServiceEndpoint>({ retryIntervalMs: 1000 }), tap, store.newServer(st)));
  });
  afterEach(async () => {
    await st.close();
    expect(clock.pending()).to.equal(0);
  });

  const until = async (cond: () => boolean): Promise<void> => {
    while (!cond()) await new Promise((r) => setImmediate(r));
  };

  it("registers again when the registry reports the entry deleted", async () => {
    await h.register(ctx(), nse("a"));
    await until(() => breakWatch !== undefined);
    await st.delete("a"); // e.g. a memory registry that restarted or expired it
    await until(() => registers === 2);
    expect(await st.get("a")).to.not.equal(undefined);
    await h.unregister(ctx(), nse("a"));
    expect(await st.get("a")).to.equal(undefined);
  });

  it("registers again after the watch stream breaks, after a pause", async () => {
    await h.register(ctx(), nse("a"));
    await until(() => breakWatch !== undefined);
    const first = breakWatch!;
    breakWatch = undefined;
    first();
    await clock.untilPending(1);
    expect(registers).to.equal(1);
    await clock.advance(1000);
    await until(() => registers === 2 && breakWatch !== undefined);
    await h.unregister(ctx(), nse("a"));
    await clock.advance(10_000);
    expect(registers).to.equal(2);
  });
});
