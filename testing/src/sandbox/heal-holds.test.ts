/**
 * "Heal that holds on", on the sandbox with a MockClock: the endpoint crashes and a replacement under the same name
 * starts 10 s, 60 s or 10 min later; the registry is down during the heal too; the client closes during the heal; the
 * backoff between attempts. Time moves only at heal's own timers (read from the client's heal state); every wait
 * is for a heal state change, never a sleep.
 */

import { create } from "@bufbuild/protobuf";
import { NetworkServiceRequestSchema } from "@nsm-ts/api/networkservice";
import { MockClock } from "@nsm-ts/base/clock";
import type { heal, NetworkServiceElement } from "@nsm-ts/sdk/networkservice";

type HealStatus = heal.HealStatus;

import { expect } from "chai";
import { newCounter } from "../elements/count/index.js";
import { createSandbox, type Sandbox } from "./index.js";
import { leftovers, resourceSnapshot } from "./leak-check.js";

const MIN = 60_000;

/** Records the client's heal states and resolves waiters on them. */
class HealStates {
  readonly all: HealStatus[] = [];
  private waiters: Array<{ pred: (s: HealStatus) => boolean; resolve: (s: HealStatus) => void }> = [];
  readonly onStatus = (s: HealStatus): void => {
    this.all.push(s);
    const hit = this.waiters.filter((w) => w.pred(s));
    this.waiters = this.waiters.filter((w) => !w.pred(s));
    for (const w of hit) w.resolve(s);
  };
  /** The next state (from now on) satisfying `pred`. */
  next(pred: (s: HealStatus) => boolean): Promise<HealStatus> {
    return new Promise((resolve) => this.waiters.push({ pred, resolve }));
  }
  /** Heal attempts whose target was the same endpoint (not a reselect). */
  get sameEndpointAttempts(): number {
    return new Set(this.all.filter((s) => s.state === "HEALING" && !s.reselect).map((s) => s.attempt)).size;
  }
}

const waiting = (s: HealStatus): boolean => (s.state === "HEALING" && s.nextAttemptAtMs !== undefined) || s.state === "CONNECTED";

/**
 * Drives the heal from a failed attempt (`s`, waiting for its next one) on: moves the clock to each next attempt and
 * waits for its outcome, until CONNECTED or until the next attempt would fall after `untilMs`. Returns the last state.
 */
async function drive(clock: MockClock, states: HealStates, s: HealStatus, untilMs = Number.POSITIVE_INFINITY): Promise<HealStatus> {
  let cur = s;
  while (cur.state === "HEALING" && (cur.nextAttemptAtMs ?? 0) <= untilMs) {
    const outcome = states.next(waiting);
    await clock.set(cur.nextAttemptAtMs ?? clock.now());
    cur = await outcome;
  }
  return cur;
}

describe("sandbox: heal holds on (mock clock)", function () {
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

  /** One node, nse-1 serving ns-1, a client with a connection to it, watched by heal; long tokens and registrations. */
  async function setup(extra: NetworkServiceElement[] = []) {
    clock = new MockClock();
    sb = await createSandbox({ nodes: 1, clock, transport: "unix", tokenLifetimeMs: 60 * MIN, registryExpirePeriodMs: 60 * MIN });
    const nse1 = await sb.addEndpoint(0, { name: "nse-1", services: ["ns-1"] });
    const states = new HealStates();
    const nsc = sb.addClient(0, { heal: { onStatus: states.onStatus }, additional: extra });
    const connected = states.next((s) => s.state === "CONNECTED");
    const conn = await nsc.request(create(NetworkServiceRequestSchema, { connection: { networkService: "ns-1" } }));
    await connected;
    await watched(sb);
    return { sb, clock, nse1, states, nsc, conn };
  }

  for (const [label, delayMs] of [
    ["10 s", 10_000],
    ["60 s", 60_000],
    ["10 min", 10 * MIN],
  ] as const) {
    it(`heals when a replacement under the same name starts ${label} after the endpoint crashed`, async () => {
      const { sb, clock, nse1, states, nsc, conn } = await setup();
      const killedAt = clock.now();
      const failed = states.next((s) => s.state === "HEALING" && s.nextAttemptAtMs !== undefined);
      await nse1.kill();
      let s = await drive(clock, states, await failed, killedAt + delayMs);
      expect(s.state, "still healing before the replacement starts").to.equal("HEALING");
      expect(s.reselect, "reselects once re-requests failed for 5 s").to.equal(true);
      await clock.set(killedAt + delayMs);
      const counter = newCounter("nse-1b");
      await sb.addEndpoint(0, { name: "nse-1", services: ["ns-1"], additional: [counter] });
      s = await drive(clock, states, s);
      expect(s.state).to.equal("CONNECTED");
      const healedAfterMs = clock.now() - (killedAt + delayMs);
      expect(healedAfterMs, "healed at the first attempt after the replacement started").to.be.at.most(6_000);
      expect(counter.uniqueRequests).to.equal(1);
      const again = await nsc.request({ connection: conn });
      expect(again.networkServiceEndpointName).to.equal("nse-1");
      expect(again.path?.pathSegments.map((x) => x.name)).to.deep.equal(["nsc-0", "nsmgr-0", "forwarder-0", "nse-1"]);
      await nsc.close(again);
    });
  }

  it("heals to a differently named replacement, reselecting right after the first failed re-request once the dead endpoint is unregistered", async () => {
    const { sb, clock, nse1, states, nsc, conn } = await setup();
    const killedAt = clock.now();
    const failed = states.next((s) => s.state === "HEALING" && s.nextAttemptAtMs !== undefined);
    await nse1.kill();
    const first = await failed;
    expect(first.reselect, "the first attempt re-requests the same endpoint").to.equal(false);
    // The dead endpoint's registration goes (a drained pod unregisters; a crashed one expires), a new one comes.
    await nse1.unregister();
    const counter = newCounter("nse-2");
    await sb.addEndpoint(0, { name: "nse-2", services: ["ns-1"], additional: [counter] });
    const s = await drive(clock, states, first);
    expect(s.state).to.equal("CONNECTED");
    const reselects = states.all.filter((x) => x.state === "HEALING" && x.reselect);
    expect(reselects[0]?.attempt, "the second attempt already reselects").to.equal(2);
    expect(clock.now() - killedAt, "not the fixed 5 s of re-requests").to.be.below(2_000);
    expect(counter.uniqueRequests, "healed onto nse-2").to.equal(1);
    await nsc.close(conn);
    expect(counter.uniqueCloses, "the client's Close reaches the healed connection").to.equal(1);
  });

  it("keeps trying while the registry is down too, and heals once registry and endpoint are back", async () => {
    const { sb, clock, nse1, states, nsc, conn } = await setup();
    const killedAt = clock.now();
    const failed = states.next((s) => s.state === "HEALING" && s.nextAttemptAtMs !== undefined);
    await nse1.kill();
    await sb.registry.kill();
    // 30 s with neither registry nor endpoint: every attempt fails, none ends the heal.
    let s = await drive(clock, states, await failed, killedAt + 30_000);
    expect(s.state, "still healing with the registry down").to.equal("HEALING");
    const attemptsWhileDown = s.attempt;
    expect(attemptsWhileDown, "attempts went on while the registry was down").to.be.at.least(8);
    expect(s.lastError, "the failed attempt's reason").to.be.a("string");
    // The registry comes back empty; the replacement registers 10 s later. The attempt due before then finds no
    // endpoint and waits in discovery (a registry watch) until one registers.
    await clock.set(killedAt + 30_000);
    await sb.registry.restart();
    // The nsmgr's channel may sit in its reconnect backoff (real time): wait for it before the mock clock moves on.
    await sb.nodes[0]?.nsmgr.instance.registryReady(Date.now() + 10_000);
    expect(s.nextAttemptAtMs, "an attempt is due before the replacement starts").to.be.below(killedAt + 40_000);
    const outcome = states.next(waiting);
    await clock.set(killedAt + 40_000);
    await sb.addEndpoint(0, { name: "nse-1", services: ["ns-1"] });
    s = await drive(clock, states, await outcome);
    expect(s.state).to.equal("CONNECTED");
    expect(clock.now() - (killedAt + 40_000), "healed at the next capped attempt").to.be.at.most(6_000);
    const again = await nsc.request({ connection: conn });
    expect(again.networkServiceEndpointName).to.equal("nse-1");
    await nsc.close(again);
  });

  it("the client facade's status() goes CONNECTED → HEALING (attempt n) → CONNECTED, and forgets a closed connection", async () => {
    const { sb, clock, nse1, states, nsc, conn } = await setup();
    expect(nsc.status()).to.deep.equal([{ connId: conn.id, state: "CONNECTED", attempt: 0 }]);
    const failed = states.next((s) => s.state === "HEALING" && s.nextAttemptAtMs !== undefined);
    await nse1.kill();
    const first = await failed;
    expect(nsc.status(conn.id)).to.deep.include({ state: "HEALING", attempt: 1, trigger: first.trigger });
    expect(nsc.status(conn.id)?.lastError, "the failed attempt's error").to.be.a("string");
    // Three more failed attempts (the endpoint stays down): the facade follows the attempt count.
    const s = await drive(clock, states, first, (first.nextAttemptAtMs ?? 0) + 2_000);
    expect(s.state).to.equal("HEALING");
    expect(s.attempt).to.be.at.least(3);
    expect(nsc.status()).to.have.length(1);
    expect(nsc.status()[0]).to.deep.include({ connId: conn.id, state: "HEALING", attempt: s.attempt });
    await sb.addEndpoint(0, { name: "nse-1", services: ["ns-1"] });
    expect((await drive(clock, states, s)).state).to.equal("CONNECTED");
    expect(nsc.status()).to.deep.equal([{ connId: conn.id, state: "CONNECTED", attempt: 0 }]);
    await nsc.close(conn);
    expect(nsc.status(), "a closed connection is no longer listed").to.deep.equal([]);
    expect(nsc.status(conn.id)).to.equal(undefined);
  });

  it("backs off from 200 ms doubling to a 5 s cap, with jitter, and never gives up", async () => {
    const { clock, nse1, states, nsc, conn } = await setup();
    const failed = states.next((s) => s.state === "HEALING" && s.nextAttemptAtMs !== undefined);
    await nse1.kill();
    const first = await failed;
    const s = await drive(clock, states, first, clock.now() + 2 * MIN);
    expect(s.state).to.equal("HEALING");
    const attemptsAt = [
      ...new Set(states.all.filter((x) => x.state === "HEALING" && x.nextAttemptAtMs === undefined).map((x) => x.attempt)),
    ];
    expect(attemptsAt.length, "attempts within 2 minutes").to.be.within(25, 35);
    const gaps: number[] = [];
    const failures = states.all.filter((x) => x.nextAttemptAtMs !== undefined);
    for (let i = 1; i < failures.length; i++) gaps.push((failures[i]?.nextAttemptAtMs ?? 0) - (failures[i - 1]?.nextAttemptAtMs ?? 0));
    const bases = [400, 800, 1600, 3200, 5000, 5000, 5000, 5000];
    bases.forEach((b, i) => {
      expect(gaps[i], `gap ${i + 2}`).to.be.within(b * 0.8 - 300, b * 1.2 + 300);
    });
    const capped = gaps.slice(6);
    expect(Math.max(...capped), "capped at 5 s + 20 %").to.be.at.most(6_000);
    expect(new Set(capped).size, "jittered, not in lockstep").to.be.greaterThan(3);
    await nsc.close(conn);
  });

  it("the client closing during the heal stops it: no timers on the clock, nothing left at nsmgr and forwarder", async () => {
    const { sb, clock, nse1, states, nsc, conn } = await setup();
    const failed = states.next((s) => s.state === "HEALING" && s.nextAttemptAtMs !== undefined);
    await nse1.kill();
    const s = await drive(clock, states, await failed, clock.now() + 8_000);
    expect(s.state).to.equal("HEALING");
    const closed = states.next((x) => x.state === "CLOSED");
    await nsc.close(conn);
    await closed;
    const n = states.all.length;
    // The mock clock holds no heal timer any more: afterEach checks it is empty once the mesh is closed.
    await clock.advance(MIN);
    expect(states.all.length, "no attempt after Close").to.equal(n);
    expect(sb.nodes[0]?.nsmgr.instance.monitor.connections()).to.deep.equal([]);
    expect(sb.nodes[0]?.forwarder.instance.monitor.connections()).to.deep.equal([]);
  });
});

/** Resolves once the client's heal watches node 0's nsmgr (a MonitorConnections subscriber there). */
async function watched(sb: Sandbox): Promise<void> {
  const nsmgr = sb.nodes[0]?.nsmgr;
  while ((nsmgr?.instance.monitor.subscribers ?? 0) === 0) await new Promise<void>((r) => setImmediate(r));
}
