import { create } from "@bufbuild/protobuf";
import { NetworkServiceRequestSchema } from "@nsm-ts/api/networkservice";
import { CallContext } from "@nsm-ts/base/context";
import { expect } from "chai";
import { handler } from "../../core/index.js";
import { newClient, newServer } from "./index.js";

describe("clientinfo", () => {
  it("adds node, pod and cluster labels without overwriting existing ones", async () => {
    const req = create(NetworkServiceRequestSchema, { connection: { id: "c1", labels: { podName: "mine", app: "x" } } });
    const conn = await handler(newClient({ nodeName: "node-1", podName: "pod-1", clusterName: "" })).request(CallContext.create(), req);
    expect(conn.labels).to.deep.equal({ podName: "mine", app: "x", nodeName: "node-1" });
  });
  it("works the same on the server side", async () => {
    const req = create(NetworkServiceRequestSchema, { connection: { id: "c1" } });
    const conn = await handler(newServer({ clusterName: "c" })).request(CallContext.create(), req);
    expect(conn.labels).to.deep.equal({ clusterName: "c" });
  });
});
