/** clientinfo (registry): node/pod/cluster labels on every service of an endpoint; set labels win. */
import type { NetworkServiceEndpoint } from "@nsm-ts/api/registry";
import { CallContext } from "@nsm-ts/base/context";
import { nse } from "@nsm-ts/testing/registry";
import { expect } from "chai";
import { registryHandler } from "../../core/index.js";
import { newClient } from "./index.js";

describe("registry clientinfo", () => {
  it("labels each service without overwriting existing labels", async () => {
    const h = registryHandler(newClient<NetworkServiceEndpoint>({ nodeName: "node-1", podName: "pod-1", clusterName: "" }));
    const res = await h.register(CallContext.create(), nse("a", ["s1", "s2"], { s1: { podName: "mine" } }));
    expect(res.networkServiceLabels.s1?.labels).to.deep.equal({ podName: "mine", nodeName: "node-1" });
    expect(res.networkServiceLabels.s2?.labels).to.deep.equal({ nodeName: "node-1", podName: "pod-1" });
  });
});
