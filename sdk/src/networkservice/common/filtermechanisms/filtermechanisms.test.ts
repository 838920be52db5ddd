import { create } from "@bufbuild/protobuf";
import { MechanismClass, MechanismType } from "@nsm-ts/api/constants";
import { MechanismSchema, NetworkServiceRequestSchema } from "@nsm-ts/api/networkservice";
import { CallContext } from "@nsm-ts/base/context";
import { expect } from "chai";
import { chain, handler } from "../../core/index.js";
import { newClient as clientUrl } from "../clienturl/index.js";
import { newServer } from "./index.js";

describe("filtermechanisms", () => {
  const request = () =>
    create(NetworkServiceRequestSchema, {
      connection: { id: "c1" },
      mechanismPreferences: [
        create(MechanismSchema, { cls: MechanismClass.LOCAL, type: MechanismType.KERNEL }),
        create(MechanismSchema, { cls: MechanismClass.REMOTE, type: MechanismType.VXLAN }),
        create(MechanismSchema, { cls: "", type: MechanismType.NOOP }),
        create(MechanismSchema, { cls: MechanismClass.REMOTE, type: MechanismType.WIREGUARD }),
      ],
    });
  const kept = async (url: string | undefined, opts = {}) => {
    const r = request();
    const h = handler(url ? chain(clientUrl(url), newServer(opts)) : newServer(opts));
    await h.request(CallContext.create(), r);
    return r.mechanismPreferences.map((m) => m.type);
  };

  it("keeps LOCAL and class-less NOOP preferences for a unix:// next hop", async () => {
    expect(await kept("unix:///tmp/x.sock")).to.deep.equal(["KERNEL", "NOOP"]);
  });
  it("keeps REMOTE preferences for a tcp:// next hop", async () => {
    expect(await kept("tcp://127.0.0.1:5001")).to.deep.equal(["VXLAN", "WIREGUARD"]);
    expect(await kept("tcp://127.0.0.1:5001", { keepNoopForRemote: true })).to.deep.equal(["VXLAN", "NOOP", "WIREGUARD"]);
  });
  it("leaves the preferences alone without a next-hop URL", async () => {
    expect(await kept(undefined)).to.deep.equal(["KERNEL", "VXLAN", "NOOP", "WIREGUARD"]);
  });
});
