import { create } from "@bufbuild/protobuf";
import { NetworkServiceRequestSchema } from "@nsm-ts/api/networkservice";
import { CallContext } from "@nsm-ts/base/context";
import { expect } from "chai";
import { chain, handler } from "../../core/index.js";
import type { NetworkServiceElement } from "../../core/types.js";
import * as vl3mtu from "./index.js";

/** The rest of the path: clamps the MTU as a VXLAN leg would. */
const clampTo = (mtu: number): NetworkServiceElement => ({
  name: "clamp",
  async request(_ctx, req) {
    const c = req.connection ?? fail();
    if (c.context && mtu > 0 && c.context.MTU > mtu) c.context.MTU = mtu;
    return c;
  },
  close: async () => undefined,
});
function fail(): never {
  throw new Error("no connection");
}
const req = (id: string, mtu = 0) => create(NetworkServiceRequestSchema, { connection: { id, context: { MTU: mtu } } });

describe("vl3mtu", () => {
  it("starts every connection at the network's minimum (a jumbo frame) and the smallest MTU seen wins", async () => {
    const state = vl3mtu.createVl3MtuState();
    const lowered: Array<{ ids: string[]; mtu: number }> = [];
    state.onLowered((ids, mtu) => lowered.push({ ids, mtu }));
    const local = handler(chain(vl3mtu.newServer(state), clampTo(0)));
    const remote = handler(chain(vl3mtu.newClient(state), clampTo(1350)));
    expect((await local.request(CallContext.create(), req("c1"))).context?.MTU).to.equal(vl3mtu.JUMBO_FRAME_SIZE);
    expect((await local.request(CallContext.create(), req("c2", 1500))).context?.MTU).to.equal(1500);
    expect(lowered).to.deep.equal([{ ids: ["c1"], mtu: 1500 }]);
    expect((await remote.request(CallContext.create(), req("peer-1"))).context?.MTU).to.equal(1350);
    expect(lowered.at(-1)).to.deep.equal({ ids: ["c1", "c2"], mtu: 1350 });
    // A refresh of c1 now gets the network's MTU.
    expect((await local.request(CallContext.create(), req("c1", vl3mtu.JUMBO_FRAME_SIZE))).context?.MTU).to.equal(1350);
    await local.close(CallContext.create(), await local.request(CallContext.create(), req("c2")));
    expect(state.mtu).to.equal(1350);
  });
});
