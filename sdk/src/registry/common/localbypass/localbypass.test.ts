/** localbypass: the upstream registry stores the nsmgr URL; local callers get the endpoint's real URL back. */
import { create } from "@bufbuild/protobuf";
import { type NetworkServiceEndpoint, NetworkServiceEndpointSchema } from "@nsm-ts/api/registry";
import { CallContext } from "@nsm-ts/base/context";
import { collect, nse } from "@nsm-ts/testing/registry";
import { expect } from "chai";
import { registryChain, registryHandler } from "../../core/index.js";
import { createMemoryStore } from "../../store/index.js";
import * as store from "../store/index.js";
import { newServer } from "./index.js";

describe("registry localbypass", () => {
  it("publishes the nsmgr URL and restores the real one for Register and Find results", async () => {
    const st = createMemoryStore("nse");
    try {
      const nsmgr = "tcp://198.51.100.10:5001";
      const h = registryHandler(registryChain(newServer<NetworkServiceEndpoint>(nsmgr), store.newServer(st)));
      const ctx = CallContext.create();
      const res = await h.register(ctx, nse("local", ["svc"], {}, "unix:///run/nse.sock"));
      expect(res.url).to.equal("unix:///run/nse.sock");
      expect((await st.get("local"))?.url).to.equal(nsmgr);
      await st.put(nse("remote", ["svc"], {}, "tcp://203.0.113.5:5001"));
      const found = await collect(
        h.find(ctx, { template: create(NetworkServiceEndpointSchema, { networkServiceNames: ["svc"] }), watch: false }),
      );
      expect(Object.fromEntries(found.map((r) => [r.entry.name, r.entry.url]))).to.deep.equal({
        local: "unix:///run/nse.sock",
        remote: "tcp://203.0.113.5:5001",
      });
      await h.unregister(ctx, nse("local", ["svc"], {}, "unix:///run/nse.sock"));
      expect(await st.get("local")).to.equal(undefined);
    } finally {
      await st.close();
    }
  });
});
