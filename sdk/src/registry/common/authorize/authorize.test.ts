/** authorize: a second identity cannot re-register or unregister a name owned by another (upstream cases). */
import type { NetworkServiceEndpoint } from "@nsm-ts/api/registry";
import { MockClock } from "@nsm-ts/base/clock";
import { CallContext } from "@nsm-ts/base/context";
import { ephemeralIdentity } from "@nsm-ts/base/identity";
import { Code, isStatusError } from "@nsm-ts/base/status";
import { createTokenGenerator } from "@nsm-ts/base/token";
import { nse } from "@nsm-ts/testing/registry";
import { expect } from "chai";
import { type RegistryElement, registryChain, registryHandler } from "../../core/index.js";
import { createMemoryStore } from "../../store/index.js";
import * as store from "../store/index.js";
import * as updatepath from "../updatepath/index.js";
import { newServer, ownerCheck } from "./index.js";

describe("registry authorize", () => {
  it("only the original registrant may refresh or unregister a name", async () => {
    const clock = new MockClock();
    const st = createMemoryStore("nse", { clock });
    const gen = async (name: string) =>
      createTokenGenerator(await ephemeralIdentity(`spiffe://test.com/${name}`), { maxTokenLifetimeMs: 600_000, clock });
    const server = registryChain(
      updatepath.newServer<NetworkServiceEndpoint>(await gen("registry")),
      newServer<NetworkServiceEndpoint>({ owners: async (n) => (await st.get(n))?.pathIds }),
      store.newServer(st),
    );
    const as = async (name: string) => registryHandler(registryChain(updatepath.newClient(await gen(name)), server));
    const alice = await as("alice");
    const mallory = await as("mallory");
    const ctx = CallContext.create({ clock });

    const res = await alice.register(ctx, nse("nse-1"));
    expect(res.pathIds).to.deep.equal(["spiffe://test.com/alice", "spiffe://test.com/registry"]);
    await alice.register(ctx, nse("nse-1")); // a refresh by the owner

    for (const op of [() => mallory.register(ctx, nse("nse-1")), () => mallory.unregister(ctx, nse("nse-1"))]) {
      const err = await op().then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(isStatusError(err, Code.PermissionDenied), String(err)).to.equal(true);
      expect((err as Error).message).to.contain("registry_client_allowed");
    }
    expect((await st.get("nse-1"))?.pathIds[0]).to.equal("spiffe://test.com/alice");
    await mallory.register(ctx, nse("nse-2")); // a new name is anyone's
    await alice.unregister(ctx, nse("nse-1"));
    await mallory.register(ctx, nse("nse-1")); // a freed name too
    await st.close();
  });

  it("two replicas racing for a new name: the store's compare-and-swap lets exactly one registrant own it", async () => {
    const clock = new MockClock();
    const st = createMemoryStore("nse", { clock });
    const gen = async (name: string) =>
      createTokenGenerator(await ephemeralIdentity(`spiffe://test.com/${name}`), { maxTokenLifetimeMs: 600_000, clock });
    // Both calls pass authorize before either reaches the store: the window two replicas really have.
    let waiting: (() => void)[] = [];
    const barrier: RegistryElement<NetworkServiceEndpoint> = {
      register: async (c, e, n) => {
        await new Promise<void>((r) => {
          waiting.push(r);
          if (waiting.length === 2) for (const w of waiting.splice(0)) w();
        });
        return n.register(c, e);
      },
      find: (c, q, n) => n.find(c, q),
      unregister: (c, e, n) => n.unregister(c, e),
    };
    // Each replica has its own elements (no shared begin or maps); only the store is shared.
    const replica = async () =>
      registryChain(
        updatepath.newServer<NetworkServiceEndpoint>(await gen("registry")),
        newServer<NetworkServiceEndpoint>({ owners: async (n) => (await st.get(n))?.pathIds }),
        barrier,
        store.newServer(st, { check: ownerCheck() }),
      );
    const alice = registryHandler(registryChain(updatepath.newClient(await gen("alice")), await replica()));
    const bob = registryHandler(registryChain(updatepath.newClient(await gen("bob")), await replica()));
    const ctx = CallContext.create({ clock });
    for (let i = 0; i < 20; i++) {
      const name = `race-${i}`;
      waiting = [];
      const results = await Promise.allSettled([alice.register(ctx, nse(name)), bob.register(ctx, nse(name))]);
      const won = results.filter((r) => r.status === "fulfilled");
      expect(won, name).to.have.length(1);
      const lost = results.find((r) => r.status === "rejected") as PromiseRejectedResult;
      expect(isStatusError(lost.reason, Code.PermissionDenied), String(lost.reason)).to.equal(true);
      const winner = (won[0] as PromiseFulfilledResult<NetworkServiceEndpoint>).value.pathIds[0];
      expect((await st.get(name))?.pathIds[0]).to.equal(winner);
    }
    await st.close();
  });
});
