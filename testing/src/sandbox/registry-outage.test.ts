/**
 * A registry outage on the sandbox (mock clock): the registry is not on the data path, so while it is down the
 * refreshes of established connections keep the forwarder and the endpoint they use — no heal, no reselect, no
 * Close at the endpoint — and only a new Request fails, with Unavailable naming the registry. Once the registry is
 * back (empty, re-filled by the registrations' heal) everything works as before.
 */

import { create } from "@bufbuild/protobuf";
import { type Connection, NetworkServiceRequestSchema } from "@nsm-ts/api/networkservice";
import { NetworkServiceEndpointSchema } from "@nsm-ts/api/registry";
import { MockClock } from "@nsm-ts/base/clock";
import { CallContext } from "@nsm-ts/base/context";
import type { ClientInterceptor } from "@nsm-ts/base/grpc";
import { Code, StatusError } from "@nsm-ts/base/status";
import type { heal } from "@nsm-ts/sdk/networkservice";
import { expect } from "chai";
import { newCounter } from "../elements/count/index.js";
import { createSandbox, type Sandbox } from "./index.js";
import { leftovers, resourceSnapshot } from "./leak-check.js";

const MIN = 60_000;
const N = 12;

/** Counts the registry watches (Find with watch) a part has open, and resolves waiters once none is. */
class Watches {
  open = 0;
  private idle: Array<() => void> = [];
  readonly interceptor: ClientInterceptor = (next) => async (call) => {
    const watch = call.path.endsWith("/Find") && (call.request as { watch?: boolean } | undefined)?.watch === true;
    if (!watch) return next(call);
    this.open++;
    try {
      return await next(call);
    } finally {
      this.open--;
      if (this.open === 0) for (const r of this.idle.splice(0)) r();
    }
  };
  /** Resolves once no watch of this part is open. */
  none(): Promise<void> {
    return this.open === 0 ? Promise.resolve() : new Promise((r) => this.idle.push(r));
  }
}

describe("sandbox: registry outage (mock clock)", function () {
  this.timeout(60_000);
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

  it(`refreshes of ${N} connections keep their forwarder and endpoint while the registry is down; a new Request fails naming the registry`, async () => {
    clock = new MockClock();
    const watches = { "nsmgr-0": new Watches(), "forwarder-0": new Watches() };
    sb = await createSandbox({
      nodes: 1,
      clock,
      transport: "unix",
      tokenLifetimeMs: 60 * MIN,
      registryExpirePeriodMs: 60 * MIN,
      interceptors: (part) => {
        const w = watches[part as keyof typeof watches];
        return w ? { client: [w.interceptor] } : {};
      },
    });
    const atNse = newCounter("nse-1");
    await sb.addEndpoint(0, { name: "nse-1", services: ["ns-1"], additional: [atNse] });
    const healing: heal.HealStatus[] = [];
    const nsc = sb.addClient(0, { retry: false, heal: { onStatus: (s) => s.state === "HEALING" && healing.push(s) } });
    const conns: Connection[] = [];
    for (let i = 0; i < N; i++)
      conns.push(await nsc.request(create(NetworkServiceRequestSchema, { connection: { networkService: "ns-1" } })));
    const route = ["nsc-0", "nsmgr-0", "forwarder-0", "nse-1"];
    for (const c of conns) expect(c.path?.pathSegments.map((s) => s.name)).to.deep.equal(route);

    await sb.registry.kill();
    // Every discovery cache has seen its watch break and forgotten its answer: look-ups now go to the registry.
    await Promise.all(Object.values(watches).map((w) => w.none()));

    atNse.reset();
    const refreshed = await Promise.all(conns.map((c) => nsc.request(create(NetworkServiceRequestSchema, { connection: c }))));
    for (const c of refreshed) {
      expect(
        c.path?.pathSegments.map((s) => s.name),
        "same forwarder and endpoint",
      ).to.deep.equal(route);
      expect(c.networkServiceEndpointName).to.equal("nse-1");
    }
    expect(atNse.requests, "every refresh reached the endpoint").to.equal(N);
    expect(atNse.closes, "no reselect closed a connection at the endpoint").to.equal(0);
    expect(healing, "no heal started").to.deep.equal([]);
    expect(sb.nodes[0]?.forwarder.instance.monitor.connections()).to.have.length(N);

    // A new connection needs the registry: it fails at once, and says so.
    const fresh = sb.addClient(0, { heal: false, refresh: false, retry: false });
    const err = await fresh.request(create(NetworkServiceRequestSchema, { connection: { networkService: "ns-1" } })).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).to.be.instanceOf(StatusError);
    expect((err as StatusError).code, (err as Error).message).to.equal(Code.Unavailable);
    expect((err as Error).message).to.match(/registry/);

    // The registry comes back empty; the registrations' heal (1 s retry on the mock clock) fills it again.
    await sb.registry.restart();
    await sb.nodes[0]?.nsmgr.instance.registryReady(Date.now() + 10_000);
    const registered = async (): Promise<number> => {
      let n = 0;
      const ctx = CallContext.create({ clock });
      for await (const _ of sb?.registry.nse.find(ctx, { template: create(NetworkServiceEndpointSchema, {}), watch: false }) ?? []) n++;
      return n;
    };
    while ((await registered()) < 2) await clock.advance(1_000);
    atNse.reset();
    const again = await Promise.all(refreshed.map((c) => nsc.request(create(NetworkServiceRequestSchema, { connection: c }))));
    for (const c of again) expect(c.path?.pathSegments.map((s) => s.name)).to.deep.equal(route);
    expect(atNse.closes).to.equal(0);
    // The sandbox registers network services once (no heal, unlike cmd-endpoint): another endpoint brings ns-1 back.
    await sb.addEndpoint(0, { name: "nse-2", services: ["ns-1"] });
    const probe = await fresh.request(create(NetworkServiceRequestSchema, { connection: { networkService: "ns-1" } }));
    await fresh.close(probe);
    expect(healing, "no heal started").to.deep.equal([]);
    for (const c of again) await nsc.close(c);
  });
});
