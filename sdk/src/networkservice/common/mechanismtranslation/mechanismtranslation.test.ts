import { clone, create } from "@bufbuild/protobuf";
import { MechanismClass, MechanismType } from "@nsm-ts/api/constants";
import {
  type Connection,
  type Mechanism,
  MechanismSchema,
  type NetworkServiceRequest,
  NetworkServiceRequestSchema,
} from "@nsm-ts/api/networkservice";
import { CallContext } from "@nsm-ts/base/context";
import { expect } from "chai";
import { chain, handler } from "../../core/index.js";
import { newClient } from "./index.js";

describe("mechanismtranslation", () => {
  it("gives the client leg its own mechanism and restores the server side's on the way back", async () => {
    const serverMech = create(MechanismSchema, { cls: MechanismClass.LOCAL, type: MechanismType.KERNEL, parameters: { name: "nsm-1" } });
    const vxlan = create(MechanismSchema, { cls: MechanismClass.REMOTE, type: MechanismType.VXLAN, parameters: { vni: "42" } });
    const seen: NetworkServiceRequest[] = [];
    const closed: Array<Mechanism | undefined> = [];
    const h = handler(
      chain(newClient(), {
        name: "remote-mechanism-and-next-hop",
        request: async (_ctx, r) => {
          seen.push(clone(NetworkServiceRequestSchema, r));
          const c = r.connection as Connection;
          if (!c.mechanism) {
            r.mechanismPreferences.push(vxlan);
            c.mechanism = vxlan; // the next hop picks it
          }
          return c;
        },
        close: async (_ctx, c) => {
          closed.push(c.mechanism);
        },
      }),
    );
    const ctx = CallContext.create();
    const req = create(NetworkServiceRequestSchema, {
      connection: { id: "c1", mechanism: serverMech },
      mechanismPreferences: [serverMech],
    });
    const conn = await h.request(ctx, req);
    expect(seen[0]?.connection?.mechanism).to.equal(undefined);
    expect(seen[0]?.mechanismPreferences).to.deep.equal([]);
    expect(conn.mechanism?.type).to.equal(MechanismType.KERNEL);

    // Refresh: the client leg keeps its own mechanism.
    await h.request(ctx, create(NetworkServiceRequestSchema, { connection: conn, mechanismPreferences: [serverMech] }));
    expect(seen[1]?.connection?.mechanism?.type).to.equal(MechanismType.VXLAN);
    expect(seen[1]?.connection?.mechanism?.parameters.vni).to.equal("42");

    await h.close(ctx, conn);
    expect(closed.map((m) => m?.type)).to.deep.equal([MechanismType.VXLAN]);
  });
});
