/** heal (client) tests: the backoff between attempts, when to reselect, and the status it reports. */
import { create } from "@bufbuild/protobuf";
import { type Connection, ConnectionSchema, State } from "@nsm-ts/api/networkservice";
import { MockClock } from "@nsm-ts/base/clock";
import { CallContext } from "@nsm-ts/base/context";
import { Code, StatusError } from "@nsm-ts/base/status";
import { type Counter, newCounter } from "@nsm-ts/testing/elements";
import { createHealChain, FakeMonitor, type FakeMonitorStream as Stream, settle } from "@nsm-ts/testing/heal";
import { expect } from "chai";
import type { NetworkServiceHandler } from "../../core/index.js";
import { forwardersUnreachable } from "../discover/index.js";
import * as heal from "./index.js";

const URL_A = "tcp://127.0.0.1:5001";

describe("heal (client): retries, reselect and status", () => {
  let clock: MockClock;
  let fake: FakeMonitor;
  let counter: Counter;
  let healer: heal.HealClient;
  let failNext: number;
  let failCode: Code;
  /** When set, the error the failing next hop throws (instead of `failCode`). */
  let failWith: (() => Error) | undefined;
  let requests: Array<{ state: State; mechanism: boolean }>;
  let h: NetworkServiceHandler;

  function build(opts: heal.HealOptions = {}): void {
    healer = heal.newClient({ monitorSource: fake.source, ...opts });
    h = createHealChain(URL_A, healer, counter, (req) => {
      // The endpoint "selected" further down; reselect clears it.
      if (req.connection && !req.connection.networkServiceEndpointName) req.connection.networkServiceEndpointName = "nse-1";
      requests.push({ state: req.connection?.state ?? State.UP, mechanism: req.connection?.mechanism !== undefined });
      // What comes back is UP, as a real next hop returns it.
      if (req.connection) req.connection.state = State.UP;
      if (failNext > 0) {
        failNext--;
        throw failWith?.() ?? new StatusError(failCode, "next hop down");
      }
    });
  }

  beforeEach(() => {
    clock = new MockClock();
    fake = new FakeMonitor();
    counter = newCounter();
    failNext = 0;
    failCode = Code.Unavailable;
    failWith = undefined;
    requests = [];
  });

  afterEach(async () => {
    await settle();
    expect(healer.watching, "watches left").to.equal(0);
    expect(fake.open, "monitor streams left open").to.equal(0);
    expect(clock.pending(), "timers left").to.equal(0);
  });

  const ctx = () => CallContext.create({ clock });
  const req = () => ({
    $typeName: "networkservice.NetworkServiceRequest" as const,
    connection: create(ConnectionSchema, { id: "c1", networkService: "ns", mechanism: { cls: "LOCAL", type: "KERNEL" } }),
    mechanismPreferences: [],
  });

  async function established(): Promise<{ conn: Connection; stream: Stream }> {
    const opened = fake.nextStream();
    const conn = await h.request(ctx(), req());
    const stream = await opened;
    expect(stream.url).to.equal(URL_A);
    expect(stream.selector.pathSegments.map((s) => [s.name, s.id])).to.deep.equal([["nsc", "c1"]]);
    return { conn, stream };
  }
  it("keeps trying with a capped backoff on the clock until the next hop answers", async () => {
    build({ minRetryDelayMs: 50, maxRetryDelayMs: 200, retryJitter: 0 });
    const { conn, stream } = await established();
    failNext = 5;
    stream.push("end");
    await settle();
    expect(requests).to.have.length(2); // the first attempt is immediate
    const attemptsAt: number[] = [];
    const start = clock.now();
    for (let i = 0; i < 5 && requests.length < 7; i++) {
      const n = requests.length;
      const due = clock.nextAt() ?? start;
      await clock.set(due);
      await settle();
      expect(requests.length).to.equal(n + 1);
      attemptsAt.push(clock.now() - start);
    }
    // Delays 50, 100, 200, 200, 200 ms: doubling, capped.
    expect(attemptsAt).to.deep.equal([50, 150, 350, 550, 750]);
    // The first Request, five failed attempts and the successful sixth.
    expect(counter.requests).to.equal(7);
    await settle();
    expect(fake.streams).to.have.length(2);
    await h.close(ctx(), conn);
  });

  /** Steps the clock to each heal timer until `requests` has `n` entries; returns the attempt times since `start`. */
  async function attemptsUntil(n: number, start: number): Promise<number[]> {
    const at: number[] = [];
    while (requests.length < n) {
      const before = requests.length;
      await clock.set(clock.nextAt() ?? clock.now());
      await settle();
      if (requests.length > before) at.push(clock.now() - start);
    }
    return at;
  }

  it("backs off exponentially from 200 ms, capped at 5 s, with ±20 % jitter by default", async () => {
    const draws = [0, 0.9999, 0.5, 0, 0.9999, 0.5, 0, 0.9999, 0.5, 0.25];
    let i = 0;
    build({ random: () => draws[i++ % draws.length] ?? 0.5 });
    const { conn, stream } = await established();
    failNext = 1000;
    const start = clock.now();
    stream.push("end");
    await settle();
    const at = await attemptsUntil(12, start);
    const gaps = at.map((t, k) => t - (k === 0 ? 0 : (at[k - 1] ?? 0)));
    // base 200, 400, 800, 1600, 3200, 5000, 5000, … each × (1 + 0.2 × (2r − 1)).
    expect(gaps).to.deep.equal([160, 480, 800, 1280, 3840, 5000, 4000, 6000, 5000, 4500]);
    healer.dispose();
    await h.close(ctx(), conn);
  });

  it("keeps healing after a failed reselect: the Close ahead of the reselect does not end the heal", async () => {
    build({ retryJitter: 0, reselectAfterMs: 1000 });
    const { conn, stream } = await established();
    failNext = 12;
    const reopened = fake.nextStream();
    stream.push("end");
    await settle();
    await attemptsUntil(1 + 13, clock.now());
    await reopened;
    const states = requests.slice(1).map((r) => r.state);
    expect(states.filter((s) => s === State.RESELECT_REQUESTED).length, "several reselect attempts").to.be.greaterThan(3);
    expect(states.at(-1)).to.equal(State.RESELECT_REQUESTED);
    expect(healer.status("c1")?.state).to.equal("CONNECTED");
    await h.close(ctx(), conn);
  });

  it("reselects right after the first failed re-request when the endpoint is not found", async () => {
    build({ retryJitter: 0 });
    const { conn, stream } = await established();
    failNext = 1;
    failCode = Code.NotFound;
    const reopened = fake.nextStream();
    stream.push("end");
    await settle();
    await attemptsUntil(3, clock.now());
    await reopened;
    expect(requests.map((r) => r.state)).to.deep.equal([State.UP, State.UP, State.RESELECT_REQUESTED]);
    await h.close(ctx(), conn);
  });

  it("asks the registry after a failed re-request: unregistered → reselect at once; registered → the 5 s fallback", async () => {
    let registered = false;
    const asked: string[] = [];
    build({
      retryJitter: 0,
      endpointLookup: async (url, name) => {
        asked.push(`${url} ${name}`);
        return registered;
      },
    });
    const { conn, stream } = await established();
    failNext = 1;
    let reopened = fake.nextStream();
    stream.push("end");
    await settle();
    await attemptsUntil(3, clock.now());
    const s2 = await reopened;
    expect(requests.map((r) => r.state)).to.deep.equal([State.UP, State.UP, State.RESELECT_REQUESTED]);
    expect(asked).to.deep.equal([`${URL_A} nse-1`]);

    registered = true;
    failNext = 100;
    reopened = fake.nextStream();
    const start = clock.now();
    const n0 = requests.length;
    s2.push("end");
    await settle();
    expect(requests.length).to.equal(n0 + 1);
    while (requests.at(-1)?.state !== State.RESELECT_REQUESTED) await attemptsUntil(requests.length + 1, start);
    // 200 + 400 + 800 + 1600 + 3200 ms: the attempt after 5 s of failures is the first reselect.
    expect(clock.now() - start).to.equal(6200);
    expect(asked).to.have.length(6);
    failNext = 0;
    await attemptsUntil(requests.length + 1, start);
    await reopened;
    await h.close(ctx(), conn);
  });

  it("attempts an nsmgr answered 'no forwarder could be reached' (a forwarder restarting) do not count toward the fallback reselect", async () => {
    build({ retryJitter: 0, endpointLookup: async () => true });
    const { conn, stream } = await established();
    failWith = () => forwardersUnreachable("discoverforwarder: all 1 forwarders failed: fwd-1: connect ENOENT", []);
    failNext = 1000;
    const reopened = fake.nextStream();
    const start = clock.now();
    stream.push("end");
    await settle();
    // 30 s without a forwarder: every attempt re-requests the same endpoint (the data path stays for the adopter).
    while (clock.now() - start < 30_000) await attemptsUntil(requests.length + 1, start);
    expect(requests.length).to.be.greaterThan(8);
    expect(requests.filter((r) => r.state === State.RESELECT_REQUESTED)).to.have.length(0);
    // The forwarder is back but the endpoint fails: the 5 s fallback counts from that first endpoint-side failure.
    failWith = undefined;
    await attemptsUntil(requests.length + 1, start);
    const endpointFailing = clock.now();
    while (requests.at(-1)?.state !== State.RESELECT_REQUESTED) await attemptsUntil(requests.length + 1, start);
    expect(clock.now() - endpointFailing).to.equal(5000);
    failNext = 0;
    await attemptsUntil(requests.length + 1, start);
    await reopened;
    await h.close(ctx(), conn);
  });

  it("reports HEALING with the attempt count, then CONNECTED, then CLOSED", async () => {
    const seen: string[] = [];
    build({ retryJitter: 0, onStatus: (s) => seen.push(`${s.state}${s.state === "HEALING" ? ` ${s.attempt}` : ""}`) });
    const { conn, stream } = await established();
    failNext = 2;
    const reopened = fake.nextStream();
    stream.push("end");
    await settle();
    expect(healer.status("c1")).to.include({ state: "HEALING", attempt: 1, lastError: "next hop down" });
    await attemptsUntil(4, clock.now());
    await reopened;
    expect(healer.status()).to.have.length(1);
    await h.close(ctx(), conn);
    expect(healer.status()).to.deep.equal([]);
    expect([...new Set(seen)]).to.deep.equal(["CONNECTED", "HEALING 1", "HEALING 2", "HEALING 3", "CLOSED"]);
  });
});
