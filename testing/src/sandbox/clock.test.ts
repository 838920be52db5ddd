/**
 * Time-driven scenarios on the sandbox with a MockClock (upstream's timeout and expiry cases): a client that
 * stops refreshing loses its connection at the NSE when its token expires; an endpoint that stops refreshing
 * its registration disappears from Find when the registration expires. Plus reselect through a restarted nsmgr.
 */

import { create } from "@bufbuild/protobuf";
import { NetworkServiceRequestSchema, State } from "@nsm-ts/api/networkservice";
import { NetworkServiceEndpointSchema } from "@nsm-ts/api/registry";
import { MockClock } from "@nsm-ts/base/clock";
import { CallContext } from "@nsm-ts/base/context";
import type { NetworkServiceElement } from "@nsm-ts/sdk/networkservice";
import { expect } from "chai";
import { newCounter } from "../elements/count/index.js";
import { createSandbox, type Sandbox } from "./index.js";
import { leftovers, resourceSnapshot } from "./leak-check.js";

const MIN = 60_000;

function onClose(hook: () => void): NetworkServiceElement {
  return {
    name: "on-close",
    request: (ctx, req, next) => next.request(ctx, req),
    async close(ctx, conn, next) {
      await next.close(ctx, conn);
      hook();
    },
  };
}

describe("sandbox scenarios on a mock clock", function () {
  this.timeout(20_000);
  let sb: Sandbox | undefined;
  let clock: MockClock | undefined;
  let before: Map<string, number>;

  beforeEach(async () => {
    await Promise.resolve(); // mocha arms the hook timer once this function has returned its promise
    before = resourceSnapshot();
  });
  afterEach(async () => {
    await sb?.close();
    sb = undefined;
    if (clock) expect(clock.pending(), "timers left on the mock clock").to.equal(0);
    clock = undefined;
    expect(await leftovers(before), "sockets, servers or timers left behind").to.deep.equal({});
  });

  it("token timeout: a client that stops refreshing loses its connection at the NSE when its token expires", async () => {
    clock = new MockClock();
    sb = await createSandbox({ nodes: 1, clock, tokenLifetimeMs: 10 * MIN, registryExpirePeriodMs: 10 * MIN });
    const counter = newCounter("nse");
    let closed: () => void = () => undefined;
    const closedAtNse = new Promise<void>((r) => {
      closed = r;
    });
    await sb.addEndpoint(0, { name: "nse-1", services: ["ns-1"], additional: [onClose(() => closed()), counter] });
    // A dead client: no refresh, no heal, one-minute tokens.
    const nsc = sb.addClient(0, { refresh: false, heal: false, retry: false, tokenLifetimeMs: MIN });
    await nsc.request(create(NetworkServiceRequestSchema, { connection: { networkService: "ns-1" } }));
    await clock.advance(MIN - 20_000);
    expect(counter.closes, "still within the token lifetime minus the request timeout").to.equal(0);
    // The nsmgr's timeout is the next timer (token expiry minus the ~15 s request timeout). Stop the clock right
    // there: the Close it starts runs on this clock's deadlines while the test waits for it to reach the NSE.
    const at = clock.nextAt() ?? 0;
    expect(at - clock.now()).to.be.within(1, 20_000);
    await clock.set(at);
    await closedAtNse;
    expect(counter.closes).to.equal(1);
  });

  it("registration expiry: an endpoint that stops refreshing disappears from Find", async () => {
    clock = new MockClock();
    sb = await createSandbox({ nodes: 1, clock, tokenLifetimeMs: 10 * MIN, registryExpirePeriodMs: MIN });
    const nse = await sb.addEndpoint(0, { name: "nse-1", services: ["ns-1"] });
    const find = async (): Promise<string[]> => {
      const out: string[] = [];
      const ctx = CallContext.create({ clock: sb?.clock });
      for await (const r of sb?.registry.nse.find(ctx, {
        template: create(NetworkServiceEndpointSchema, { name: "nse-1" }),
        watch: false,
      }) ?? []) {
        out.push(r.entry.name);
      }
      return out;
    };
    expect(await find()).to.deep.equal(["nse-1"]);
    await nse.kill();
    await clock.advance(MIN - 1000);
    expect(await find(), "not expired yet").to.deep.equal(["nse-1"]);
    await clock.advance(1000);
    expect(await find()).to.deep.equal([]);
  });
});

describe("sandbox reselect", function () {
  this.timeout(20_000);
  let sb: Sandbox | undefined;
  let before: Map<string, number>;
  beforeEach(async () => {
    await Promise.resolve();
    before = resourceSnapshot();
  });
  afterEach(async () => {
    await sb?.close();
    sb = undefined;
    expect(await leftovers(before), "sockets, servers or timers left behind").to.deep.equal({});
  });

  it("reselect after an nsmgr restart: RESELECT_REQUESTED closes the old endpoint's connection and picks the new endpoint", async () => {
    sb = await createSandbox({ nodes: 1 });
    const old = newCounter("nse-1");
    const nse1 = await sb.addEndpoint(0, { name: "nse-1", services: ["ns-1"], additional: [old] });
    const nsc = sb.addClient(0, { heal: false });
    const conn = await nsc.request(create(NetworkServiceRequestSchema, { connection: { networkService: "ns-1" } }));
    await sb.nodes[0]?.nsmgr.restart();
    await nse1.unregister();
    await sb.addEndpoint(0, { name: "nse-2", services: ["ns-1"] });
    const req = create(NetworkServiceRequestSchema, { connection: conn });
    const c = req.connection;
    if (c) {
      c.state = State.RESELECT_REQUESTED;
      c.networkServiceEndpointName = "";
      c.mechanism = undefined;
    }
    const moved = await nsc.request(req);
    expect(moved.networkServiceEndpointName).to.equal("nse-2");
    expect(moved.path?.pathSegments.map((s) => s.name)).to.deep.equal(["nsc-0", "nsmgr-0", "forwarder-0", "nse-2"]);
    expect(old.closes, "the old endpoint's connection was closed").to.equal(1);
    await nsc.close(moved);
  });
});
