/** begin (registry): calls for one name run one at a time in arrival order; other names are not held up. */
import type { NetworkServiceEndpoint } from "@nsm-ts/api/registry";
import { CallContext } from "@nsm-ts/base/context";
import { nse } from "@nsm-ts/testing/registry";
import { expect } from "chai";
import { type RegistryElement, registryChain, registryHandler } from "../../core/index.js";
import { KeyedSerializer, newServer } from "./index.js";

describe("registry begin", () => {
  it("serialises Register/Unregister by name", async () => {
    const log: string[] = [];
    const gates = new Map<string, () => void>();
    const slow: RegistryElement<NetworkServiceEndpoint> = {
      register: async (_c, e) => {
        log.push(`start ${e.name}`);
        await new Promise<void>((r) => gates.set(e.name, r));
        log.push(`end ${e.name}`);
        return e;
      },
      find: async function* () {},
      unregister: async (_c, e) => {
        log.push(`unregister ${e.name}`);
      },
    };
    const h = registryHandler(registryChain(newServer<NetworkServiceEndpoint>(), slow));
    const ctx = CallContext.create();
    const r1 = h.register(ctx, nse("a"));
    const u1 = h.unregister(ctx, nse("a"));
    const r2 = h.register(ctx, nse("b"));
    while (gates.size < 2) await new Promise((r) => setImmediate(r));
    expect(log).to.deep.equal(["start a", "start b"]);
    gates.get("b")!();
    await r2;
    expect(log).to.not.include("unregister a");
    gates.get("a")!();
    await Promise.all([r1, u1]);
    expect(log).to.deep.equal(["start a", "start b", "end b", "end a", "unregister a"]);
  });

  it("drains its per-name queue", async () => {
    const s = new KeyedSerializer();
    await Promise.all(Array.from({ length: 100 }, (_, i) => s.run(`k${i % 3}`, async () => i)));
    expect(s.size).to.equal(0);
  });
});
