/**
 * Scenario tests of the mesh on the sandbox, ported from upstream's nsmgr suite: local and remote
 * request/refresh/close, passthrough chains, late and busy endpoints, dead endpoints.
 */
import { expect } from "chai";
import { create } from "@bufbuild/protobuf";
import { type NetworkServiceRequest, NetworkServiceRequestSchema } from "@nsm-ts/api/networkservice";
import { newCounter } from "../../networkservice/utils/count/index.js";
import { type Sandbox, createSandbox } from "./index.js";
import { leftovers, resourceSnapshot } from "./leak-check.js";

const request = (service = "ns-1"): NetworkServiceRequest =>
  create(NetworkServiceRequestSchema, { connection: { networkService: service, labels: { app: "test" } } });

describe("sandbox scenarios (nsmgr suite)", function () {
  this.timeout(20_000);
  let sb: Sandbox | undefined;
  let before: Map<string, number>;

  // async, so that mocha's own hook timer is counted in the baseline as it is in afterEach
  beforeEach(async () => {
    await Promise.resolve(); // mocha arms the hook timer once this function has returned its promise
    before = resourceSnapshot();
  });
  afterEach(async () => {
    await sb?.close();
    sb = undefined;
    expect(await leftovers(before), "sockets, servers or timers left behind").to.deep.equal({});
  });

  for (const transport of ["tcp", "unix"] as const) {
    it(`local request/refresh/close over ${transport}: 4 path segments`, async () => {
      sb = await createSandbox({ nodes: 1, transport });
      const counter = newCounter("nse");
      await sb.addEndpoint(0, { name: "nse-1", services: ["ns-1"], additional: [counter] });
      const nsc = sb.addClient(0);
      const conn = await nsc.request(request());
      expect(conn.path?.pathSegments.map((s) => s.name)).to.deep.equal(["nsc-0", "nsmgr-0", "forwarder-0", "nse-1"]);
      expect(counter.requests).to.equal(1);
      const again = await nsc.request({ connection: conn });
      expect(again.path?.pathSegments).to.have.length(4);
      expect(again.id).to.equal(conn.id);
      expect(counter.requests).to.equal(2);
      expect(counter.uniqueRequests).to.equal(1);
      await nsc.close(again);
      expect(counter.closes).to.equal(1);
    });
  }

  it("remote request/refresh/close: 6 path segments", async () => {
    sb = await createSandbox({ nodes: 2 });
    const counter = newCounter("nse");
    await sb.addEndpoint(0, { name: "nse-1", services: ["ns-1"], additional: [counter] });
    const nsc = sb.addClient(1);
    const conn = await nsc.request(request());
    expect(conn.path?.pathSegments.map((s) => s.name)).to.deep.equal(["nsc-0", "nsmgr-1", "forwarder-1", "nsmgr-0", "forwarder-0", "nse-1"]);
    const again = await nsc.request({ connection: conn });
    expect(again.path?.pathSegments).to.have.length(6);
    expect(counter.requests).to.equal(2);
    expect(counter.uniqueRequests).to.equal(1);
    await nsc.close(again);
    expect(counter.closes).to.equal(1);
  });
});
