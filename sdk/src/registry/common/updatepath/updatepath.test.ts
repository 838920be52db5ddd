/** updatepath (registry): path growth and index restore on each hop, path_ids, and refreshes through the same hops. */
import type { NetworkServiceEndpoint } from "@nsm-ts/api/registry";
import { MockClock } from "@nsm-ts/base/clock";
import { CallContext } from "@nsm-ts/base/context";
import { ephemeralIdentity } from "@nsm-ts/base/identity";
import { Code, isStatusError } from "@nsm-ts/base/status";
import { createTokenGenerator, decodeToken } from "@nsm-ts/base/token";
import { nse } from "@nsm-ts/testing/registry";
import { expect } from "chai";
import { type RegistryElement, registryChain, registryHandler } from "../../core/index.js";
import { pathKey, type RegistryPath } from "../grpcmetadata/index.js";
import { newClient, newServer, updatePath } from "./index.js";

describe("registry updatepath", () => {
  const clock = new MockClock();
  const gen = async (n: string) =>
    createTokenGenerator(await ephemeralIdentity(`spiffe://test.com/${n}`), { maxTokenLifetimeMs: 60_000, clock });

  it("updatePath appends a segment, reuses an existing one and rejects an out-of-range index", () => {
    const p: RegistryPath = { index: 0, segments: [] };
    expect(updatePath(p, "t0")).to.equal(0);
    expect(p).to.deep.equal({ index: 0, segments: [{ token: "t0" }] });
    expect(updatePath(p, "t1")).to.equal(0);
    expect(p).to.deep.equal({ index: 1, segments: [{ token: "t0" }, { token: "t1" }] });
    p.index = 0;
    expect(updatePath(p, "t1b")).to.equal(0);
    expect(p.segments).to.deep.equal([{ token: "t0" }, { token: "t1b" }]);
    let err: unknown;
    try {
      updatePath({ index: 3, segments: [{ token: "x" }] }, "t");
    } catch (e) {
      err = e;
    }
    expect(isStatusError(err, Code.InvalidArgument)).to.equal(true);
  });

  it("client → server → server: each hop adds its token and id, and every hop sees its own index on return", async () => {
    const seen: number[] = [];
    const probe = (): RegistryElement<NetworkServiceEndpoint> => ({
      register: async (c, e, n) => {
        seen.push(pathKey.get(c)!.index);
        return n.register(c, e);
      },
      find: (c, q, n) => n.find(c, q),
      unregister: (c, e, n) => n.unregister(c, e),
    });
    const h = registryHandler(
      registryChain(
        newClient<NetworkServiceEndpoint>(await gen("nse")),
        probe(),
        newServer<NetworkServiceEndpoint>(await gen("nsmgr")),
        probe(),
        newServer<NetworkServiceEndpoint>(await gen("registry")),
        probe(),
      ),
    );
    const path: RegistryPath = { index: 0, segments: [] };
    const ctx = CallContext.create({ clock }).with(pathKey, path);
    const res = await h.register(ctx, nse("a"));
    expect(seen).to.deep.equal([0, 1, 2]);
    expect(res.pathIds).to.deep.equal(["spiffe://test.com/nse", "spiffe://test.com/nsmgr", "spiffe://test.com/registry"]);
    expect(path.index).to.equal(0);
    expect(path.segments.map((s) => decodeToken(s.token).sub)).to.deep.equal(res.pathIds);
    // A refresh starts from a fresh path (refresh and heal drop the caller's) and gets the same ids.
    const again = await h.register(CallContext.create({ clock }), nse("a"));
    expect(again.pathIds).to.deep.equal(res.pathIds);
  });
});
