/**
 * Scenario tests of the mesh on the sandbox, ported from upstream's nsmgr suite: local and remote
 * request/refresh/close, passthrough chains, late and busy endpoints, dead endpoints.
 */

import { create } from "@bufbuild/protobuf";
import { type NetworkServiceRequest, NetworkServiceRequestSchema } from "@nsm-ts/api/networkservice";
import type { NetworkServiceElement } from "@nsm-ts/sdk/networkservice";
import { expect } from "chai";
import { newCounter } from "../elements/count/index.js";
import { newErrorElement } from "../elements/inject/index.js";
import { createSandbox, type Sandbox } from "./index.js";
import { leftovers, resourceSnapshot } from "./leak-check.js";

const request = (service = "ns-1"): NetworkServiceRequest =>
  create(NetworkServiceRequestSchema, { connection: { networkService: service, labels: { app: "test" } } });

/** An element that calls `hook` with the number of Requests that have reached it so far. */
function onRequest(hook: (n: number) => void): NetworkServiceElement {
  let n = 0;
  return {
    name: "on-request",
    request(ctx, req, next) {
      hook(++n);
      return next.request(ctx, req);
    },
    close: (ctx, conn, next) => next.close(ctx, conn),
  };
}

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
    expect(conn.path?.pathSegments.map((s) => s.name)).to.deep.equal([
      "nsc-0",
      "nsmgr-1",
      "forwarder-1",
      "nsmgr-0",
      "forwarder-0",
      "nse-1",
    ]);
    const again = await nsc.request({ connection: conn });
    expect(again.path?.pathSegments).to.have.length(6);
    expect(counter.requests).to.equal(2);
    expect(counter.uniqueRequests).to.equal(1);
    await nsc.close(again);
    expect(counter.closes).to.equal(1);
  });

  it("passthrough local: 7 endpoints on one node, 4×6+4 path segments", async () => {
    sb = await createSandbox({ nodes: 1, transport: "unix" });
    const counter = newCounter("last");
    for (let i = 0; i < 7; i++) {
      const additional = i === 0 ? [counter] : sb.passthrough(0, `endpoint-${i}`, `svc-${i - 1}`);
      await sb.addEndpoint(0, { name: `endpoint-${i}`, services: [`svc-${i}`], additional });
    }
    const nsc = sb.addClient(0);
    const conn = await nsc.request(request("svc-6"));
    expect(conn.path?.pathSegments).to.have.length(4 * 6 + 4);
    expect(conn.path?.pathSegments.slice(0, 5).map((s) => s.name)).to.deep.equal([
      "nsc-0",
      "nsmgr-0",
      "forwarder-0",
      "endpoint-6",
      "endpoint-6-client",
    ]);
    expect(conn.path?.pathSegments.at(-1)?.name).to.equal("endpoint-0");
    expect(conn.networkService).to.equal("svc-6");
    expect(counter.requests).to.equal(1);
    await nsc.close(conn);
    expect(counter.closes).to.equal(1);
  });

  it("passthrough remote: 7 endpoints on 7 nodes, each passing to the previous node, 6×6+4 path segments", async () => {
    sb = await createSandbox({ nodes: 7 });
    const counter = newCounter("last");
    for (let i = 0; i < 7; i++) {
      const additional = i === 0 ? [counter] : sb.passthrough(i, `endpoint-${i}`, `svc-${i - 1}`);
      await sb.addEndpoint(i, { name: `endpoint-${i}`, services: [`svc-${i}`], additional });
    }
    const nsc = sb.addClient(6);
    const conn = await nsc.request(request("svc-6"));
    expect(conn.path?.pathSegments).to.have.length(6 * 6 + 4);
    expect(conn.path?.pathSegments.slice(4, 10).map((s) => s.name)).to.deep.equal([
      "endpoint-6-client",
      "nsmgr-6",
      "forwarder-6",
      "nsmgr-5",
      "forwarder-5",
      "endpoint-5",
    ]);
    expect(counter.requests).to.equal(1);
    await nsc.close(conn);
    expect(counter.closes).to.equal(1);
  });

  it("an endpoint that registers after the request started is found (discover waits)", async () => {
    sb = await createSandbox({ nodes: 2 });
    const counter = newCounter("nse");
    const nsc = sb.addClient(1);
    const pending = nsc.request(request());
    // The request is on its way: the network service is not even registered yet.
    await sb.addEndpoint(0, { name: "nse-late", services: ["ns-1"], additional: [counter] });
    const conn = await pending;
    expect(conn.path?.pathSegments).to.have.length(6);
    expect(counter.requests).to.equal(1);
    await nsc.close(conn);
  });

  it("an endpoint registered before it listens is reached once it starts (client retry)", async () => {
    sb = await createSandbox({ nodes: 1 });
    const counter = newCounter("nse");
    let started: Promise<void> | undefined;
    const nse = await sb.addEndpoint(0, { name: "nse-slow", services: ["ns-1"], additional: [counter], start: false });
    const nsc = sb.addClient(0, {
      // Start the endpoint when the first attempt has failed on its closed socket.
      additional: [
        {
          name: "start-after-first-failure",
          async request(ctx, req, next) {
            try {
              return await next.request(ctx, req);
            } catch (err) {
              started ??= nse.start();
              throw err;
            }
          },
          close: (ctx, conn, next) => next.close(ctx, conn),
        },
      ],
    });
    const conn = await nsc.request(request());
    expect(started, "the first attempt failed").to.not.equal(undefined);
    expect(conn.path?.pathSegments).to.have.length(4);
    expect(counter.requests).to.equal(1);
    await nsc.close(conn);
  });

  it("busy endpoints: three always fail, the fourth (added later) serves the request", async () => {
    sb = await createSandbox({ nodes: 2 });
    const box = sb;
    const counter = newCounter("nse-3");
    let fourth: Promise<unknown> | undefined;
    let busyHits = 0;
    const busy = () => [
      onRequest(() => {
        if (++busyHits === 3) fourth = box.addEndpoint(1, { name: "nse-3", services: ["ns-1"], additional: [counter] });
      }),
      newErrorElement(),
    ];
    for (let i = 0; i < 3; i++) await sb.addEndpoint(1, { name: `nse-${i}`, services: ["ns-1"], additional: busy() });
    const nsc = sb.addClient(0);
    const conn = await nsc.request(request());
    await fourth;
    expect(conn.networkServiceEndpointName).to.equal("nse-3");
    expect(conn.path?.pathSegments).to.have.length(6);
    expect(counter.requests).to.equal(1);
    const again = await nsc.request({ connection: conn });
    expect(again.networkServiceEndpointName).to.equal("nse-3");
    expect(counter.requests).to.equal(2);
    await nsc.close(again);
    expect(counter.closes).to.equal(1);
  });

  it("a refresh to a dead endpoint fails within 1 s instead of hanging; Close returns too", async () => {
    sb = await createSandbox({ nodes: 1 });
    const nse = await sb.addEndpoint(0, { name: "nse-1", services: ["ns-1"] });
    const nsc = sb.addClient(0, { retry: false, heal: false });
    const conn = await nsc.request(request());
    await nse.kill();
    const t0 = Date.now();
    const err = await nsc.request({ connection: conn }, { timeoutMs: 5000 }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err, "the refresh failed").to.be.instanceOf(Error);
    expect(Date.now() - t0).to.be.below(1000);
    const t1 = Date.now();
    await nsc.close(conn, { timeoutMs: 5000 }).catch(() => undefined);
    expect(Date.now() - t1).to.be.below(1000);
  });

  it("a sandbox that fails to start stops what had started (nothing left behind)", async () => {
    // The second node's forwarder cannot be built: the registry, both nsmgrs and the first forwarder are up by then.
    const failing = createSandbox({
      nodes: 2,
      transport: "tcp",
      interceptors: (part) => {
        if (part === "forwarder-1") throw new Error("no forwarder-1 today");
        return { server: [], client: [] };
      },
    });
    let err: unknown;
    await failing.catch((e: unknown) => {
      err = e;
    });
    expect(String(err)).to.contain("no forwarder-1 today");
    // afterEach finds no server, socket or timer left.
  });
});
