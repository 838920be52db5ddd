/** localbypass: the upstream registry stores the nsmgr URL; local callers get the endpoint's real URL back. */
import { create } from "@bufbuild/protobuf";
import { type NetworkServiceEndpoint, NetworkServiceEndpointSchema } from "@nsm-ts/api/registry";
import { CallContext } from "@nsm-ts/base/context";
import { collect, nse } from "@nsm-ts/testing/registry";
import { expect } from "chai";
import { type RegistryElement, registryChain, registryHandler } from "../../core/index.js";
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

  it("knows the real URL while the upstream Register runs, and forgets it when that Register fails", async () => {
    const nsmgr = "tcp://198.51.100.10:5001";
    const seen: string[] = [];
    let failNext = false;
    const upstream: RegistryElement<NetworkServiceEndpoint> = {
      name: "upstream",
      async register(ctx, entry) {
        // What a watcher of the registry sees during the call, through the bypass.
        const found = await collect(h.find(ctx, { template: create(NetworkServiceEndpointSchema, { name: entry.name }), watch: false }));
        seen.push(...found.map((r) => r.entry.url));
        if (failNext) throw new Error("upstream down");
        return entry;
      },
      async *find(_ctx, query) {
        yield { entry: create(NetworkServiceEndpointSchema, { name: query.template.name, url: nsmgr }), deleted: false };
      },
      unregister: async () => {},
    };
    const h = registryHandler(registryChain(newServer<NetworkServiceEndpoint>(nsmgr), upstream));
    const ctx = CallContext.create();
    await h.register(ctx, nse("a", ["svc"], {}, "unix:///run/a.sock"));
    expect(seen).to.deep.equal(["unix:///run/a.sock"]);
    failNext = true;
    await h.register(ctx, nse("b", ["svc"], {}, "unix:///run/b.sock")).then(
      () => expect.fail("register should fail"),
      (err: Error) => expect(err.message).to.equal("upstream down"),
    );
    const after = await collect(h.find(ctx, { template: create(NetworkServiceEndpointSchema, { name: "b" }), watch: false }));
    expect(after.map((r) => r.entry.url)).to.deep.equal([nsmgr]);
  });
});
