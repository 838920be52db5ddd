/** discover + roundrobin inside a forwarder-like chain with the real updatepath, begin and metadata elements. */

import { create } from "@bufbuild/protobuf";
import { NetworkServiceRequestSchema } from "@nsm-ts/api/networkservice";
import { MockClock } from "@nsm-ts/base/clock";
import { CallContext } from "@nsm-ts/base/context";
import { newCheck } from "@nsm-ts/testing/elements";
import { memNseRegistry, memNsRegistry, nsOf as ns, nseOf as nse } from "@nsm-ts/testing/registry";
import { expect } from "chai";
import { chain, handler } from "../../core/index.js";
import * as begin from "../begin/index.js";
import { urlKey } from "../clienturl/index.js";
import * as metadata from "../metadata/index.js";
import * as roundrobin from "../roundrobin/index.js";
import * as updatepath from "../updatepath/index.js";
import { newServer } from "./index.js";

describe("discover + roundrobin in a chain", () => {
  it("keeps the endpoint on refresh, moves on reselect, and re-discovers when the endpoint unregisters", async () => {
    const clock = new MockClock();
    const nsReg = memNsRegistry();
    const nseReg = memNseRegistry();
    await nsReg.register(CallContext.create(), ns({ name: "ns-1" }));
    for (const i of [1, 2, 3]) {
      await nseReg.register(CallContext.create(), nse({ name: `nse-${i}`, url: `tcp://127.0.0.1:500${i}`, networkServiceNames: ["ns-1"] }));
    }
    const hops: string[] = [];
    let events: begin.EventFactory | undefined;
    const md = metadata.newServer();
    const h = handler(
      chain(
        updatepath.newServer("forwarder"),
        begin.newServer(),
        md,
        newCheck({
          beforeRequest: (ctx) => {
            events = begin.eventFactoryKey.get(ctx);
          },
        }),
        newServer({ ns: nsReg, nse: nseReg }),
        roundrobin.newServer(),
        newCheck({
          beforeRequest: (ctx) => {
            hops.push(urlKey.get(ctx)?.port ?? "none");
          },
          beforeClose: (ctx) => {
            hops.push(`close ${urlKey.get(ctx)?.port ?? "none"}`);
          },
        }),
      ),
    );
    const ctx = CallContext.create({ clock, deadline: clock.now() + 1000 });
    const conn = await h.request(ctx, create(NetworkServiceRequestSchema, { connection: { networkService: "ns-1" } }));
    expect(conn.networkServiceEndpointName).to.equal("nse-1");

    const refreshed = await events?.request();
    expect(refreshed?.networkServiceEndpointName).to.equal("nse-1");

    const reselected = await events?.request({ reselect: true });
    expect(reselected?.networkServiceEndpointName).to.equal("nse-2");

    await nseReg.unregister(CallContext.create(), nse({ name: "nse-2" }));
    const healed = await events?.request();
    // The rotation continues over the remaining endpoints [nse-1, nse-3]: third choice for ns-1 → index 2 % 2.
    expect(healed?.networkServiceEndpointName).to.equal("nse-1");

    await h.close(CallContext.create(), healed ?? conn);
    expect(hops).to.deep.equal(["5001", "5001", "close 5001", "5002", "5001", "close 5001"]);
    expect(md.size()).to.equal(0);
    expect(clock.pending()).to.equal(0);
    expect(nseReg.watchers + nsReg.watchers).to.equal(0);
  });
});
