/** heal (client): the shared monitor stream — one stream per next hop and name, routed per watch, reopened once. */
import { create } from "@bufbuild/protobuf";
import {
  type Connection,
  ConnectionEventType,
  ConnectionSchema,
  type MonitorScopeSelector,
  MonitorScopeSelectorSchema,
  State,
} from "@nsm-ts/api/networkservice";
import { MockClock } from "@nsm-ts/base/clock";
import { silentLogger } from "@nsm-ts/base/log";
import { Code, StatusError } from "@nsm-ts/base/status";
import { connectionEvent as event, FakeMonitorStream, settle } from "@nsm-ts/testing/heal";
import { expect } from "chai";
import { type MonitorSource, type StreamTrigger, watchStream } from "./monitor.js";
import { sharedMonitorSource } from "./mux.js";

const URL_A = "tcp://127.0.0.1:5001";

/** The next hop's copy of our connection `id` (our segment "nsc"/id, then the hop's own). */
function atHop(id: string, state = State.UP): Connection {
  return create(ConnectionSchema, {
    id: `hop-${id}`,
    state,
    path: {
      index: 1,
      pathSegments: [
        { name: "nsc", id },
        { name: "nsmgr", id: `hop-${id}` },
      ],
    },
  });
}

const selectorOf = (id: string): MonitorScopeSelector => create(MonitorScopeSelectorSchema, { pathSegments: [{ name: "nsc", id }] });

/** The raw source under the mux: every stream it opens, fed by the test. */
class Raw {
  readonly streams: FakeMonitorStream[] = [];
  readonly source: MonitorSource = (url, selector, signal) => {
    const s = new FakeMonitorStream(url, selector);
    this.streams.push(s);
    return s.run(signal);
  };
  get open(): number {
    return this.streams.filter((s) => !s.closed).length;
  }
  last(): FakeMonitorStream {
    const s = this.streams.at(-1);
    if (!s) throw new Error("no stream opened");
    return s;
  }
}

describe("heal (client): one shared monitor stream per next hop", () => {
  let clock: MockClock;
  let raw: Raw;
  let mux: ReturnType<typeof sharedMonitorSource>;
  let stops: AbortController[];

  beforeEach(() => {
    clock = new MockClock();
    raw = new Raw();
    mux = sharedMonitorSource(raw.source, { clock, joinGraceMs: 1_000, reopenTimeoutMs: 500 });
    stops = [];
  });

  afterEach(async () => {
    for (const s of stops) s.abort();
    await settle();
    expect(raw.open, "raw streams left open").to.equal(0);
    expect(mux.streams, "shared streams left").to.equal(0);
    expect(clock.pending(), "timers left").to.equal(0);
  });

  /** Starts the watch of connection `id`; its result settles when it would start a heal (or is stopped). */
  function watch(id: string): { result: Promise<StreamTrigger>; settled: () => StreamTrigger | undefined; stop: () => void } {
    const ac = new AbortController();
    stops.push(ac);
    let out: StreamTrigger | undefined;
    const result = watchStream(mux, URL_A, selectorOf(id), ac.signal, silentLogger, id).then((t) => (out = t));
    return { result, settled: () => out, stop: () => ac.abort() };
  }

  it("serves many watches with one name-only stream and routes each event to its connection's watch", async () => {
    const ids = Array.from({ length: 200 }, (_, i) => `c${i}`);
    const watches = ids.map(watch);
    await settle();
    expect(raw.streams).to.have.length(1);
    expect(raw.last().selector.pathSegments.map((s) => [s.name, s.id])).to.deep.equal([["nsc", ""]]);
    raw.last().push(
      event(
        ConnectionEventType.INITIAL_STATE_TRANSFER,
        ids.map((id) => atHop(id)),
      ),
    );
    await settle();
    expect(watches.filter((w) => w.settled() !== undefined)).to.have.length(0);

    // The next hop deletes c7 and reports c9 down: those two heal, nobody else.
    raw.last().push(event(ConnectionEventType.DELETE, [atHop("c7")]));
    raw.last().push(event(ConnectionEventType.UPDATE, [atHop("c9", State.DOWN)]));
    expect(await watches[7]?.result).to.equal("down");
    expect(await watches[9]?.result).to.equal("down");
    await settle();
    expect(watches.filter((w) => w.settled() !== undefined)).to.have.length(2);

    // Closing every other watch leaves the stream alone; the last one cancels it (one reset).
    for (const w of watches.slice(1)) w.stop();
    await settle();
    expect(raw.open).to.equal(1);
    watches[0]?.stop();
    await settle();
    expect(raw.open).to.equal(0);
  });

  it("a watch joining a running stream starts from its view, or waits for its connection's UPDATE", async () => {
    const first = watch("c1");
    await settle();
    raw.last().push(event(ConnectionEventType.INITIAL_STATE_TRANSFER, [atHop("c1"), atHop("c2")]));
    await settle();
    const known = watch("c2");
    const fresh = watch("c3");
    const never = watch("c4");
    await settle();
    expect(raw.streams, "still one stream").to.have.length(1);
    expect([known.settled(), fresh.settled(), never.settled()]).to.deep.equal([undefined, undefined, undefined]);

    // c3's UPDATE trails its Request's reply: the watch was waiting for it and goes on watching.
    raw.last().push(event(ConnectionEventType.UPDATE, [atHop("c3")]));
    await settle();
    expect(fresh.settled()).to.equal(undefined);
    raw.last().push(event(ConnectionEventType.UPDATE, [atHop("c3", State.DOWN)]));
    expect(await fresh.result).to.equal("down");

    // c4 never shows up: after the grace its state transfer comes without it, as a restarted next hop's would.
    await clock.advance(1_000);
    expect(await never.result).to.equal("down");
    expect([first.settled(), known.settled()]).to.deep.equal([undefined, undefined]);
  });

  it("with idleMs the stream outlives its last watch: the next watch joins it, then it ends after idleMs or on close()", async () => {
    mux = sharedMonitorSource(raw.source, { clock, joinGraceMs: 1_000, reopenTimeoutMs: 500, idleMs: 5_000 });
    // One connection at a time: Request (watch), Close (stop), the next Request.
    const c1 = watch("c1");
    await settle();
    raw.last().push(event(ConnectionEventType.INITIAL_STATE_TRANSFER, [atHop("c1")]));
    await settle();
    c1.stop();
    raw.last().push(event(ConnectionEventType.DELETE, [atHop("c1")]));
    await settle();
    expect(c1.settled()).to.equal("stopped");
    expect([raw.open, mux.streams], "lingering").to.deep.equal([1, 1]);
    await clock.advance(4_000);
    raw.last().push(event(ConnectionEventType.UPDATE, [atHop("c2")]));
    const c2 = watch("c2");
    await settle();
    expect(raw.streams, "c2 joined the lingering stream").to.have.length(1);
    raw.last().push(event(ConnectionEventType.UPDATE, [atHop("c2", State.DOWN)]));
    expect(await c2.result).to.equal("down");
    await settle();
    // The watch's timer started over with c2: it runs out idleMs after c2 went, not after c1.
    await clock.advance(4_000);
    expect(raw.open).to.equal(1);
    await clock.advance(1_000);
    await settle();
    expect([raw.open, mux.streams], "ended after idleMs without a watch").to.deep.equal([0, 0]);

    // A lingering stream that breaks is just gone; the next watch opens a new one, and close() ends it at once.
    const c3 = watch("c3");
    await settle();
    raw.last().push(event(ConnectionEventType.INITIAL_STATE_TRANSFER, [atHop("c3")]));
    await settle();
    c3.stop();
    await settle();
    raw.last().push(new StatusError(Code.Unavailable, "peer went away"));
    await settle();
    expect([raw.open, mux.streams, clock.pending()]).to.deep.equal([0, 0, 0]);
    const c4 = watch("c4");
    await settle();
    raw.last().push(event(ConnectionEventType.INITIAL_STATE_TRANSFER, [atHop("c4")]));
    await settle();
    expect(raw.streams).to.have.length(3);
    c4.stop();
    await settle();
    expect(raw.open).to.equal(1);
    mux.close();
    await settle();
    expect([raw.open, mux.streams, clock.pending()]).to.deep.equal([0, 0, 0]);
  });

  it("reopens a broken stream once: connections the peer still holds stay watched, the others are lost", async () => {
    const a = watch("c1");
    const b = watch("c2");
    const c = watch("c3");
    await settle();
    raw.last().push(event(ConnectionEventType.INITIAL_STATE_TRANSFER, [atHop("c1"), atHop("c2"), atHop("c3")]));
    await settle();

    // GOAWAY or a transport error: the stream fails, a new one is opened at once.
    raw.last().push(new StatusError(Code.Unavailable, "GOAWAY received"));
    await settle();
    expect(raw.streams).to.have.length(2);
    raw.last().push(event(ConnectionEventType.INITIAL_STATE_TRANSFER, [atHop("c1"), atHop("c3", State.DOWN)]));
    expect(await b.result).to.equal("lost");
    expect(await c.result).to.equal("down");
    await settle();
    expect(a.settled()).to.equal(undefined);

    // The peer is gone for good: the reopen fails before a state transfer, and every watch is lost (then heals).
    raw.last().push(new StatusError(Code.Unavailable, "connection reset"));
    await settle();
    raw.last().push(new StatusError(Code.Unavailable, "connection refused"));
    expect(await a.result).to.equal("lost");
  });

  it("a reopen that hangs counts as failed after reopenTimeoutMs", async () => {
    const a = watch("c1");
    await settle();
    raw.last().push(event(ConnectionEventType.INITIAL_STATE_TRANSFER, [atHop("c1")]));
    raw.last().push("end");
    await settle();
    expect(raw.streams).to.have.length(2);
    expect(a.settled()).to.equal(undefined);
    await clock.advance(500);
    expect(await a.result).to.equal("lost");
  });

  it("the first stream failing loses every watch; Unimplemented leaves them unwatched", async () => {
    const a = watch("c1");
    await settle();
    raw.last().push(new StatusError(Code.Unavailable, "connection refused"));
    expect(await a.result).to.equal("lost");
    const b = watch("c2");
    await settle();
    expect(raw.streams).to.have.length(2);
    raw.last().push(new StatusError(Code.Unimplemented, "unknown service"));
    expect(await b.result).to.equal("unsupported");
  });

  it("falls back to one stream per watch when the peer refuses the name-only selector", async () => {
    const a = watch("c1");
    const b = watch("c2");
    await settle();
    raw.last().push(new StatusError(Code.PermissionDenied, "policy service_connection denied"));
    await settle();
    expect(raw.streams.slice(1).map((s) => s.selector.pathSegments[0]?.id)).to.deep.equal(["c1", "c2"]);
    raw.streams[2]?.push(event(ConnectionEventType.INITIAL_STATE_TRANSFER, []));
    expect(await b.result).to.equal("down");
    // A watch joining while the peer refuses sharing gets its own stream straight away.
    const c = watch("c3");
    await settle();
    expect(raw.last().selector.pathSegments[0]?.id).to.equal("c3");
    expect([a.settled(), c.settled()]).to.deep.equal([undefined, undefined]);
  });

  it("falls back as well when the state transfer is over the receive limit", async () => {
    const a = watch("c1");
    await settle();
    raw.last().push(new StatusError(Code.ResourceExhausted, "Received message larger than max (5000000 vs 4194304)"));
    await settle();
    expect(raw.streams.map((s) => s.selector.pathSegments[0]?.id)).to.deep.equal(["", "c1"]);
    raw.last().push(event(ConnectionEventType.INITIAL_STATE_TRANSFER, [atHop("c1")]));
    await settle();
    expect(a.settled()).to.equal(undefined);
  });

  it("passes any other selector through to its own stream", async () => {
    const ac = new AbortController();
    stops.push(ac);
    const it = mux(URL_A, create(MonitorScopeSelectorSchema), ac.signal)[Symbol.asyncIterator]();
    const first = it.next();
    await settle();
    expect(raw.streams).to.have.length(1);
    expect(raw.last().selector.pathSegments).to.have.length(0);
    raw.last().push(event(ConnectionEventType.INITIAL_STATE_TRANSFER, [atHop("x")]));
    expect(Object.keys((await first).value?.connections ?? {})).to.deep.equal(["hop-x"]);
    ac.abort();
    await it.return?.();
  });
});
