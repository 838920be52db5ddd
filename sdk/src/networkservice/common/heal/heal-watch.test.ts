/** heal (client) tests: the monitor stream's events, the liveness check, refresh, Close and dispose. */
import { create } from "@bufbuild/protobuf";
import { type Connection, ConnectionEventType, ConnectionSchema, State } from "@nsm-ts/api/networkservice";
import { MockClock } from "@nsm-ts/base/clock";
import { CallContext } from "@nsm-ts/base/context";
import { Code, StatusError } from "@nsm-ts/base/status";
import { type Counter, newCounter } from "@nsm-ts/testing/elements";
import {
  atNextHop,
  createHealChain,
  connectionEvent as event,
  FakeMonitor,
  type FakeMonitorStream as Stream,
  settle,
} from "@nsm-ts/testing/heal";
import { expect } from "chai";
import type { NetworkServiceHandler } from "../../core/index.js";
import * as heal from "./index.js";

const URL_A = "tcp://127.0.0.1:5001";

describe("heal (client): what starts a heal, and what ends the watch", () => {
  let clock: MockClock;
  let fake: FakeMonitor;
  let counter: Counter;
  let healer: heal.HealClient;
  let failNext: number;
  let failCode: Code;
  let requests: Array<{ state: State; mechanism: boolean }>;
  let alive: boolean;
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
        throw new StatusError(failCode, "next hop down");
      }
    });
  }

  beforeEach(() => {
    clock = new MockClock();
    fake = new FakeMonitor();
    counter = newCounter();
    failNext = 0;
    failCode = Code.Unavailable;
    requests = [];
    alive = true;
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
  it("re-requests when the next hop reports the connection DOWN, then watches again", async () => {
    build();
    const { conn, stream } = await established();
    await settle();
    expect(counter.requests).to.equal(1);
    const reopened = fake.nextStream();
    stream.push(event(ConnectionEventType.UPDATE, [atNextHop(conn, State.DOWN)]));
    const again = await reopened;
    expect(counter.requests).to.equal(2);
    expect(requests[1]?.state).to.not.equal(State.RESELECT_REQUESTED);
    await settle();
    expect(stream.closed).to.equal(true);
    expect(again.closed).to.equal(false);
    await h.close(ctx(), conn);
  });

  it("ignores events about other connections and UP updates", async () => {
    build();
    const { conn, stream } = await established();
    const other = atNextHop(conn, State.DOWN);
    other.path!.pathSegments[0]!.id = "someone-else";
    stream.push(event(ConnectionEventType.UPDATE, [other]));
    stream.push(event(ConnectionEventType.DELETE, [other]));
    stream.push(event(ConnectionEventType.UPDATE, [atNextHop(conn, State.UP)]));
    await settle();
    expect(counter.requests).to.equal(1);
    expect(fake.streams).to.have.length(1);
    await h.close(ctx(), conn);
  });

  it("treats a DELETE of our connection and a stream that ends as lost connections", async () => {
    build();
    const { conn, stream } = await established();
    let reopened = fake.nextStream();
    stream.push(event(ConnectionEventType.DELETE, [atNextHop(conn)]));
    const second = await reopened;
    expect(counter.requests).to.equal(2);
    reopened = fake.nextStream();
    second.push(new StatusError(Code.Unavailable, "server is shutting down"));
    await reopened;
    expect(counter.requests).to.equal(3);
    await h.close(ctx(), conn);
  });

  it("heals when the initial state transfer lacks our connection", async () => {
    build();
    fake.knows = false;
    const opened = fake.nextStream();
    const conn = await h.request(ctx(), req());
    const reopened = fake.nextStream();
    await opened;
    fake.knows = true;
    await reopened;
    expect(counter.requests).to.equal(2);
    await h.close(ctx(), conn);
  });

  it("heals when the initial state transfer reports our connection DOWN", async () => {
    build();
    fake.initialState = State.DOWN;
    const opened = fake.nextStream();
    const conn = await h.request(ctx(), req());
    const reopened = fake.nextStream();
    await opened;
    fake.initialState = State.UP;
    await reopened;
    expect(counter.requests).to.equal(2);
    await h.close(ctx(), conn);
  });

  it("reselects when the data-path liveness check fails", async () => {
    build({
      livenessCheck: async () => alive,
      livenessCheckIntervalMs: 1000,
    });
    const { conn } = await established();
    await clock.advance(3000);
    expect(counter.requests).to.equal(1);
    alive = false;
    const reopened = fake.nextStream();
    await clock.advance(1000);
    await reopened;
    // begin closed the old connection and asked again with RESELECT_REQUESTED, without the mechanism.
    expect(counter.closes).to.equal(1);
    expect(requests[1]?.state).to.equal(State.RESELECT_REQUESTED);
    expect(requests[1]?.mechanism).to.equal(false);
    alive = true;
    await h.close(ctx(), conn);
  });

  it("a liveness check that hangs counts as failed after its timeout", async () => {
    build({
      livenessCheck: (_c, signal) => new Promise<boolean>((resolve) => signal.addEventListener("abort", () => resolve(true))),
      livenessCheckIntervalMs: 1000,
      livenessCheckTimeoutMs: 500,
    });
    const { conn } = await established();
    const reopened = fake.nextStream();
    await clock.advance(1500);
    await reopened;
    expect(requests[1]?.state).to.equal(State.RESELECT_REQUESTED);
    await h.close(ctx(), conn);
  });

  it("Close ends the watch before closing, so the next hop's DELETE does not heal", async () => {
    build();
    const { conn, stream } = await established();
    await h.close(ctx(), conn);
    stream.push(event(ConnectionEventType.DELETE, [atNextHop(conn)]));
    await settle();
    expect(stream.closed).to.equal(true);
    expect(counter.requests).to.equal(1);
    expect(fake.streams).to.have.length(1);
  });

  it("Close during a heal that keeps failing stops the retries", async () => {
    build();
    const { conn, stream } = await established();
    failNext = 1000;
    stream.push("end");
    await clock.advance(1000);
    expect(requests.length).to.be.greaterThan(3);
    await h.close(ctx(), conn);
    const n = requests.length;
    await clock.advance(5000);
    expect(requests.length).to.equal(n);
  });

  it("a refresh keeps the running watch; a next hop without MonitorConnections is left unwatched", async () => {
    build();
    const { conn } = await established();
    await h.request(ctx(), req());
    await settle();
    expect(fake.streams).to.have.length(1);
    await h.close(ctx(), conn);

    const unsupported = fake.nextStream();
    const c2 = await h.request(ctx(), req());
    (await unsupported).push(new StatusError(Code.Unimplemented, "unknown service connection.MonitorConnection"));
    await settle();
    expect(healer.watching).to.equal(0);
    await h.request(ctx(), req()); // a refresh does not open the stream again
    await settle();
    expect(fake.streams).to.have.length(2);
    expect(counter.requests).to.equal(4);
    await h.close(ctx(), c2);
  });

  it("dispose ends every watch", async () => {
    build();
    await established();
    healer.dispose();
    await settle();
    expect(fake.open).to.equal(0);
  });
});
