import { clone, create } from "@bufbuild/protobuf";
import {
  type Connection,
  type ConnectionEvent,
  ConnectionEventSchema,
  ConnectionEventType,
  ConnectionSchema,
  type MonitorScopeSelector,
  State,
} from "@nsm-ts/api/networkservice";
import { MockClock } from "@nsm-ts/base/clock";
import { CallContext } from "@nsm-ts/base/context";
import { Code, StatusError } from "@nsm-ts/base/status";
import { type Counter, newCheck, newCounter } from "@nsm-ts/testing/elements";
import { expect } from "chai";
import { chain, handler, type NetworkServiceHandler } from "../../core/index.js";
import * as begin from "../begin/index.js";
import * as clienturl from "../clienturl/index.js";
import * as metadata from "../metadata/index.js";
import * as updatepath from "../updatepath/index.js";
import * as heal from "./index.js";

const URL_A = "tcp://127.0.0.1:5001";

/** One open fake monitor stream. */
class Stream {
  private queue: Array<ConnectionEvent | StatusError | "end"> = [];
  private wake: (() => void) | undefined;
  closed = false;
  constructor(
    readonly url: string,
    readonly selector: MonitorScopeSelector,
  ) {}
  push(item: ConnectionEvent | StatusError | "end"): void {
    this.queue.push(item);
    this.wake?.();
  }
  async *run(signal: AbortSignal): AsyncGenerator<ConnectionEvent> {
    const onAbort = (): void => this.wake?.();
    signal.addEventListener("abort", onAbort);
    try {
      for (;;) {
        if (signal.aborted) return;
        const item = this.queue.shift();
        if (item === "end") return;
        if (item instanceof StatusError) throw item;
        if (item) {
          yield item;
          continue;
        }
        await new Promise<void>((r) => (this.wake = r));
      }
    } finally {
      this.closed = true;
      signal.removeEventListener("abort", onAbort);
    }
  }
}

/** A MonitorSource the test drives: it sees every subscription and feeds events into it. */
class FakeMonitor {
  readonly streams: Stream[] = [];
  /** Whether the next hop knows the watched connection: decides the initial state transfer of new streams. */
  knows = true;
  /** The state the next hop reports for the connection in the initial state transfer. */
  initialState = State.UP;
  private waiters: Array<(s: Stream) => void> = [];
  readonly source: heal.MonitorSource = (url, selector, signal) => {
    const s = new Stream(url, selector);
    const mine = create(ConnectionSchema, { id: "c1", networkService: "ns", path: { index: 0, pathSegments: [...selector.pathSegments] } });
    s.push(event(ConnectionEventType.INITIAL_STATE_TRANSFER, this.knows ? [atNextHop(mine, this.initialState)] : []));
    this.streams.push(s);
    for (const w of this.waiters.splice(0)) w(s);
    return s.run(signal);
  };
  nextStream(): Promise<Stream> {
    return new Promise((r) => this.waiters.push(r));
  }
  get open(): number {
    return this.streams.filter((s) => !s.closed).length;
  }
}

function event(type: ConnectionEventType, conns: Connection[]): ConnectionEvent {
  const connections: Record<string, Connection> = {};
  for (const c of conns) connections[c.id] = c;
  return create(ConnectionEventSchema, { type, connections });
}

/** The next hop's view of a connection: our segment plus its own, index 1. */
function atNextHop(conn: Connection, state = State.UP): Connection {
  const c = clone(ConnectionSchema, conn);
  c.path?.pathSegments.push({ $typeName: "connection.PathSegment", name: "nsmgr", id: "hop-1", token: "", metrics: {} });
  if (c.path) c.path.index = 1;
  c.id = "hop-1";
  c.state = state;
  return c;
}

/** Lets pending promise callbacks and setImmediate work run. */
async function settle(): Promise<void> {
  for (let i = 0; i < 10; i++) await new Promise<void>((r) => setImmediate(r));
}

describe("heal (client)", () => {
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
    h = handler(
      chain(
        updatepath.newClient("nsc"),
        begin.newClient(),
        metadata.newClient(),
        clienturl.newClient(URL_A),
        healer,
        counter,
        newCheck({
          beforeRequest: (_ctx, req) => {
            // The endpoint "selected" further down; reselect clears it.
            if (req.connection && !req.connection.networkServiceEndpointName) req.connection.networkServiceEndpointName = "nse-1";
            requests.push({ state: req.connection?.state ?? State.UP, mechanism: req.connection?.mechanism !== undefined });
            // What comes back is UP, as a real next hop returns it.
            if (req.connection) req.connection.state = State.UP;
            if (failNext > 0) {
              failNext--;
              throw new StatusError(failCode, "next hop down");
            }
          },
        }),
      ),
    );
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
