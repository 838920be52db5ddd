/** setpayload: an empty network service payload defaults to IP (upstream case); a set one is kept. */
import type { NetworkService } from "@nsm-ts/api/registry";
import { CallContext } from "@nsm-ts/base/context";
import { ns } from "@nsm-ts/testing/registry";
import { expect } from "chai";
import { registryHandler } from "../../core/index.js";
import { newServer } from "./index.js";

describe("registry setpayload", () => {
  it("defaults an empty payload to IP and keeps a set one", async () => {
    const h = registryHandler(newServer<NetworkService>());
    const ctx = CallContext.create();
    const req = ns("svc");
    expect((await h.register(ctx, req)).payload).to.equal("IP");
    expect(req.payload).to.equal("");
    expect((await h.register(ctx, ns("svc", "ETHERNET"))).payload).to.equal("ETHERNET");
  });
});
