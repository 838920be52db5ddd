import { create } from "@bufbuild/protobuf";
import { type Connection, ConnectionSchema, NetworkServiceRequestSchema, State } from "@nsm-ts/api/networkservice";
import { MockClock } from "@nsm-ts/base/clock";
import { CallContext, ContextKey } from "@nsm-ts/base/context";
import { Code, fail, isStatusError, StatusError } from "@nsm-ts/base/status";
import { newCheck, newCounter } from "@nsm-ts/testing/elements";
import { expect } from "chai";
import { chain, handler, type NetworkServiceElement } from "../../core/index.js";
import * as begin from "./index.js";

function req(id: string, extra: { state?: State } = {}) {
  return create(NetworkServiceRequestSchema, { connection: { id, ...extra } });
}

/** An element that captures the EventFactory begin hands it. */
function captureFactory(): NetworkServiceElement & { factory: () => begin.EventFactory } {
  let f: begin.EventFactory | undefined;
  return {
    name: "capture",
    factory: () => f ?? expect.fail("no factory captured"),
    async request(ctx, r, next) {
      f = begin.eventFactoryOf(ctx, "capture");
      return next.request(ctx, r);
    },
    close: (ctx, c, next) => next.close(ctx, c),
  };
}

/** Lets other queued work run (not a wait for state: it only creates interleavings). */
const turn = (): Promise<void> => new Promise((r) => setImmediate(r));

/** An element that records overlapping operations per connection id. */
function overlapDetector() {
  const active = new Map<string, number>();
  const violations: string[] = [];
  let ops = 0;
  const enter = (id: string, op: string): void => {
    ops++;
    if ((active.get(id) ?? 0) > 0) violations.push(`${op} on ${id} overlapped`);
    active.set(id, (active.get(id) ?? 0) + 1);
  };
  const leave = (id: string): void => void active.set(id, (active.get(id) ?? 1) - 1);
  const el: NetworkServiceElement = {
    name: "overlap",
    async request(ctx, r, next) {
      const id = r.connection?.id ?? "";
      enter(id, "request");
      try {
        await turn();
        return await next.request(ctx, r);
      } finally {
        leave(id);
      }
    },
    async close(ctx, c, next) {
      enter(c.id, "close");
      try {
        await turn();
        await next.close(ctx, c);
      } finally {
        leave(c.id);
      }
    },
  };
  return { el, violations, ops: () => ops };
}

describe("begin", () => {
  it("sets state UP on the server side and remembers the connection", async () => {
    const b = begin.newServer();
    const h = handler(b);
    const conn = await h.request(CallContext.create(), req("c1", { state: State.DOWN }));
    expect(conn.state).to.equal(State.UP);
    expect(b.size()).to.equal(1);
    await h.close(CallContext.create(), conn);
    expect(b.size()).to.equal(0);
  });

  it("double close: the second Close does not reach the chain again", async () => {
    const counter = newCounter();
    const b = begin.newServer();
    const h = handler(chain(b, counter));
    const conn = await h.request(CallContext.create(), req("c1"));
    await h.close(CallContext.create(), conn);
    await h.close(CallContext.create(), conn);
    expect(counter.requests).to.equal(1);
    expect(counter.closes).to.equal(1);
    expect(b.size()).to.equal(0);
  });

  it("close of an unknown connection is a no-op", async () => {
    const counter = newCounter();
    const h = handler(chain(begin.newServer(), counter));
    await h.close(CallContext.create(), create(ConnectionSchema, { id: "nope" }));
    expect(counter.closes).to.equal(0);
  });

  it("rejects a request without a connection id", async () => {
    const h = handler(begin.newServer());
    try {
      await h.request(CallContext.create(), req(""));
      expect.fail("expected an error");
    } catch (err) {
      expect((err as Error).message).to.contain("connection.id must not be empty");
    }
  });

  it("a failed first request leaves no state; Close afterwards does nothing", async () => {
    const counter = newCounter();
    const b = begin.newServer();
    const h = handler(
      chain(b, counter, {
        name: "fail",
        request: async () => {
          throw new Error("boom");
        },
        close: (ctx, c, n) => n.close(ctx, c),
      }),
    );
    let failed = false;
    await h.request(CallContext.create(), req("c1")).catch(() => {
      failed = true;
    });
    expect(failed).to.equal(true);
    expect(b.size()).to.equal(0);
    await h.close(CallContext.create(), create(ConnectionSchema, { id: "c1" }));
    expect(counter.closes).to.equal(0);
  });

  it("context values: events run with the request's values, a live signal and a fresh deadline", async () => {
    const key = new ContextKey<string>("test.value");
    const cap = captureFactory();
    const seen: Array<{ value: string | undefined; aborted: boolean; deadline: number | undefined }> = [];
    const h = handler(
      chain(
        begin.newClient({ eventTimeoutMs: 5_000 }),
        cap,
        newCheck({
          beforeRequest: (ctx) => {
            seen.push({ value: key.get(ctx), aborted: ctx.signal.aborted, deadline: ctx.deadline });
          },
        }),
      ),
    );
    const ac = new AbortController();
    const conn = await h.request(CallContext.create({ signal: ac.signal }).with(key, "v1"), req("c1"));
    // The caller's call is over; its signal must not end the connection's background work.
    ac.abort();
    const f = cap.factory();
    expect(f.signal.aborted).to.equal(false);
    const refreshed = await f.request();
    expect(refreshed?.id).to.equal("c1");
    expect(seen).to.have.length(2);
    expect(seen[1]?.value).to.equal("v1");
    expect(seen[1]?.aborted).to.equal(false);
    expect(seen[1]?.deadline).to.be.a("number");
    await h.close(CallContext.create(), conn);
    expect(f.signal.aborted).to.equal(true);
  });

  it("event close closes the connection downstream once and ends the factory", async () => {
    const counter = newCounter();
    const cap = captureFactory();
    const b = begin.newServer();
    const h = handler(chain(b, cap, counter));
    const conn = await h.request(CallContext.create(), req("c1"));
    await cap.factory().close();
    expect(counter.closes).to.equal(1);
    expect(b.size()).to.equal(0);
    expect(await cap.factory().request()).to.equal(undefined);
    await h.close(CallContext.create(), conn);
    expect(counter.closes).to.equal(1);
  });

  it("refresh during close: an event request queued behind a Close does nothing", async () => {
    const counter = newCounter();
    const cap = captureFactory();
    let release: () => void = () => undefined;
    let entered: () => void = () => undefined;
    const closeEntered = new Promise<void>((r) => (entered = r));
    const blocker: NetworkServiceElement = {
      name: "block-close",
      request: (ctx, r, n) => n.request(ctx, r),
      async close(ctx, c, n) {
        entered();
        await new Promise<void>((r) => (release = r));
        await n.close(ctx, c);
      },
    };
    const h = handler(chain(begin.newServer(), cap, counter, blocker));
    const conn = await h.request(CallContext.create(), req("c1"));
    const closing = h.close(CallContext.create(), conn);
    await closeEntered;
    const refresh = cap.factory().request();
    release();
    await closing;
    expect(await refresh).to.equal(undefined);
    expect(counter.requests).to.equal(1);
    expect(counter.closes).to.equal(1);
  });

  it("reselect event: closes downstream, then re-requests with RESELECT_REQUESTED and no mechanism or endpoint", async () => {
    const steps: string[] = [];
    const cap = captureFactory();
    const h = handler(
      chain(
        begin.newClient(),
        cap,
        newCheck({
          beforeRequest: (_c, r) => {
            const c = r.connection as Connection;
            steps.push(`request state=${c.state} nse=${c.networkServiceEndpointName} mech=${c.mechanism?.type ?? ""}`);
            if (!c.networkServiceEndpointName) c.networkServiceEndpointName = `nse-${steps.length}`;
            if (!c.mechanism) c.mechanism = { $typeName: "connection.Mechanism", cls: "LOCAL", type: "KERNEL", parameters: {} };
          },
          beforeClose: (_c, c) => void steps.push(`close nse=${c.networkServiceEndpointName}`),
        }),
      ),
    );
    const conn = await h.request(CallContext.create(), req("c1"));
    expect(conn.networkServiceEndpointName).to.equal("nse-1");
    const out = await cap.factory().request({ reselect: true });
    expect(steps).to.deep.equal([
      `request state=${State.UP} nse= mech=`,
      "close nse=nse-1",
      `request state=${State.RESELECT_REQUESTED} nse= mech=`,
    ]);
    expect(out?.networkServiceEndpointName).to.equal("nse-3");
    await h.close(CallContext.create(), out as Connection);
    expect(steps.at(-1)).to.equal("close nse=nse-3");
  });

  it("reselect from the caller: a RESELECT_REQUESTED request on an established connection closes the old one first", async () => {
    const counter = newCounter();
    const steps: string[] = [];
    const h = handler(chain(begin.newServer(), counter, new StepsElement(steps)));
    const conn = await h.request(CallContext.create(), req("c1"));
    conn.state = State.RESELECT_REQUESTED;
    const again = await h.request(CallContext.create(), create(NetworkServiceRequestSchema, { connection: conn }));
    expect(steps).to.deep.equal(["request", "close", "request"]);
    expect(again.state).to.equal(State.UP);
    expect(counter.closes).to.equal(1);
    await h.close(CallContext.create(), again);
  });

  it("serialises 1,000 concurrent operations on one connection id", async () => {
    const det = overlapDetector();
    const cap = captureFactory();
    const b = begin.newServer();
    const h = handler(chain(b, cap, det.el));
    await h.request(CallContext.create(), req("c1"));
    const f = cap.factory();
    const ops: Array<Promise<unknown>> = [];
    for (let i = 0; i < 1000; i++) {
      if (i % 100 === 99) ops.push(h.close(CallContext.create(), create(ConnectionSchema, { id: "c1" })));
      else if (i % 3 === 0) ops.push(f.request());
      else ops.push(h.request(CallContext.create(), req("c1")));
    }
    const results = await Promise.allSettled(ops);
    expect(results.filter((r) => r.status === "rejected")).to.deep.equal([]);
    expect(det.violations).to.deep.equal([]);
    expect(det.ops()).to.be.greaterThan(600);
    await h.close(CallContext.create(), create(ConnectionSchema, { id: "c1" }));
    expect(b.size()).to.equal(0);
  });

  it("serialises operations per id across 1,000 connection ids while running different ids concurrently", async () => {
    const det = overlapDetector();
    let inFlight = 0;
    let maxInFlight = 0;
    const gauge: NetworkServiceElement = {
      name: "gauge",
      async request(ctx, r, n) {
        inFlight++;
        maxInFlight = Math.max(maxInFlight, inFlight);
        try {
          await turn();
          return await n.request(ctx, r);
        } finally {
          inFlight--;
        }
      },
      close: (ctx, c, n) => n.close(ctx, c),
    };
    const b = begin.newServer();
    const h = handler(chain(b, det.el, gauge));
    const ops: Array<Promise<unknown>> = [];
    for (let i = 0; i < 1000; i++) {
      const id = `c${i}`;
      ops.push(h.request(CallContext.create(), req(id)));
      ops.push(h.request(CallContext.create(), req(id)));
      ops.push(h.close(CallContext.create(), create(ConnectionSchema, { id })));
    }
    const results = await Promise.allSettled(ops);
    expect(results.filter((r) => r.status === "rejected")).to.deep.equal([]);
    expect(det.violations).to.deep.equal([]);
    expect(det.ops()).to.equal(3000);
    expect(maxInFlight, "different ids must not be serialised against each other").to.be.greaterThan(1);
    expect(b.size()).to.equal(0);
  });

  it("tries a transiently failed Close once more with the connection's state, then releases it", async () => {
    const clock = new MockClock();
    const seen: string[] = [];
    let failures = 1;
    const downstream: NetworkServiceElement = {
      name: "flaky-close",
      request: (c, r, next) => next.request(c, r),
      async close(_c, conn) {
        seen.push(conn.id);
        if (failures-- > 0) throw new StatusError(Code.Unavailable, "flaky-close: injected");
      },
    };
    const b = begin.newClient();
    const h = handler(chain(b, downstream));
    const conn = await h.request(CallContext.create({ clock }), req("c1"));
    const closing = h.close(CallContext.create({ clock }), conn);
    await clock.untilPending(1);
    await clock.advance(begin.CLOSE_RETRY_MS);
    await closing;
    expect(seen).to.deep.equal(["c1", "c1"]);
    expect(b.size()).to.equal(0);
    expect(clock.pending()).to.equal(0);

    // Errors about the request itself are not retried.
    let refused = 0;
    const strict: NetworkServiceElement = {
      ...downstream,
      close: async () => {
        refused++;
        fail(Code.InvalidArgument, "strict: bad close");
      },
    };
    const b2 = begin.newClient();
    const h2 = handler(chain(b2, strict));
    const conn3 = await h2.request(CallContext.create({ clock }), req("c3"));
    const err = await h2.close(CallContext.create({ clock }), conn3).catch((e: unknown) => e);
    expect(isStatusError(err, Code.InvalidArgument)).to.equal(true);
    expect([refused, b2.size(), clock.pending()]).to.deep.equal([1, 0, 0]);
  });
});

/** Records request/close steps. */
class StepsElement implements NetworkServiceElement {
  readonly name = "steps";
  constructor(private readonly steps: string[]) {}
  request: NetworkServiceElement["request"] = (ctx, r, n) => {
    this.steps.push("request");
    return n.request(ctx, r);
  };
  close: NetworkServiceElement["close"] = (ctx, c, n) => {
    this.steps.push("close");
    return n.close(ctx, c);
  };
}
