import { clone, create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { type Connection, ConnectionSchema, NetworkServiceRequestSchema } from "@nsm-ts/api/networkservice";
import { MockClock } from "@nsm-ts/base/clock";
import { CallContext } from "@nsm-ts/base/context";
import { Code, isStatusError } from "@nsm-ts/base/status";
import { type Counter, type InjectErrorOptions, newCounter, newErrorElement } from "@nsm-ts/testing/elements";
import { expect } from "chai";
import { chain, handler, type NetworkServiceElement, type NetworkServiceHandler } from "../../core/index.js";
import * as begin from "../begin/index.js";
import * as metadata from "../metadata/index.js";
import * as updatepath from "../updatepath/index.js";
import * as timeout from "./index.js";

const TOKEN_TIMEOUT_MS = 15 * 60_000;
const CLIENT = "nsc";
const SERVER = "nse";

describe("timeout server", () => {
  let clock: MockClock;
  let counter: Counter;

  beforeEach(() => {
    clock = new MockClock();
    counter = newCounter();
  });
  afterEach(() => {
    expect(clock.pending(), "timers left on the mock clock").to.equal(0);
  });

  function server(extra: NetworkServiceElement[] = [], opts: timeout.TimeoutOptions = {}): NetworkServiceHandler {
    return handler(
      chain(updatepath.newServer(SERVER), begin.newServer(), metadata.newServer(), timeout.newServer(opts), counter, ...extra),
    );
  }

  /** A request as the previous hop sends it: its own segment with a token expiring `lifetimeMs` from now. */
  function firstRequest(lifetimeMs = TOKEN_TIMEOUT_MS) {
    return create(NetworkServiceRequestSchema, {
      connection: {
        id: "conn-1",
        networkService: "ns",
        path: { index: 0, pathSegments: [{ name: CLIENT, id: "conn-1", token: "t", expires: timestampFromMs(clock.now() + lifetimeMs) }] },
      },
    });
  }

  /** The refresh the previous hop sends: the last connection with a fresh expiry of its own segment. */
  function refreshOf(conn: Connection, lifetimeMs = TOKEN_TIMEOUT_MS) {
    const c = clone(ConnectionSchema, conn);
    const seg = c.path?.pathSegments[0];
    if (seg) seg.expires = timestampFromMs(clock.now() + lifetimeMs);
    return create(NetworkServiceRequestSchema, { connection: c });
  }

  const ctx = (deadlineInMs?: number) =>
    CallContext.create({ clock, ...(deadlineInMs === undefined ? {} : { deadline: clock.now() + deadlineInMs }) });

  it("request: closes the connection at the previous segment's expiry when nobody refreshes it", async () => {
    const h = server();
    await h.request(ctx(), firstRequest());
    expect(clock.pending()).to.equal(1);
    await clock.advance(TOKEN_TIMEOUT_MS - 1);
    expect(counter.closes).to.equal(0);
    await clock.advance(1);
    expect(counter.closes).to.equal(1);
  });

  it("a disposed chain (begin's lifetime aborted) keeps no expiry timer and no connection, and closes nothing", async () => {
    const lifetime = new AbortController();
    const b = begin.newServer({ signal: lifetime.signal });
    const h = handler(chain(updatepath.newServer(SERVER), b, metadata.newServer(), timeout.newServer(), counter));
    const conns: Connection[] = [];
    for (const id of ["conn-1", "conn-2", "conn-3"]) {
      const req = firstRequest();
      const c = req.connection as Connection;
      c.id = id;
      const seg = c.path?.pathSegments[0];
      if (seg) seg.id = id;
      conns.push(await h.request(ctx(), req));
    }
    // Refreshes re-arm the timer: one timer (and one lifetime hook) per connection, not one per refresh.
    const again = await h.request(ctx(), refreshOf(conns[0] as Connection));
    await h.request(ctx(), refreshOf(again));
    expect([clock.pending(), b.size()]).to.deep.equal([3, 3]);
    lifetime.abort();
    expect([clock.pending(), b.size()], "timers, connections").to.deep.equal([0, 0]);
    await clock.advance(TOKEN_TIMEOUT_MS);
    expect(counter.closes, "no Close from a disposed chain").to.equal(0);
  });

  it("request: closes earlier by the incoming call's request timeout", async () => {
    const h = server();
    await h.request(ctx(10_000), firstRequest());
    await clock.advance(TOKEN_TIMEOUT_MS - 10_000 - 1);
    expect(counter.closes).to.equal(0);
    await clock.advance(1);
    expect(counter.closes).to.equal(1);
  });

  it("close before timeout: stops the timer, nothing is closed twice", async () => {
    const h = server();
    const conn = await h.request(ctx(), firstRequest());
    await clock.advance(TOKEN_TIMEOUT_MS / 2);
    await h.close(ctx(), conn);
    expect(counter.closes).to.equal(1);
    expect(clock.pending()).to.equal(0);
    await clock.advance(TOKEN_TIMEOUT_MS);
    expect(counter.closes).to.equal(1);
  });

  it("close after timeout: the expired connection was closed once, the late Close does not reach the chain", async () => {
    const h = server();
    const conn = await h.request(ctx(), firstRequest());
    await clock.advance(TOKEN_TIMEOUT_MS);
    expect(counter.closes).to.equal(1);
    await h.close(ctx(), conn);
    expect(counter.closes).to.equal(1);
  });

  it("refresh: a refreshed connection is re-armed at the new expiry", async () => {
    const h = server();
    let conn = await h.request(ctx(), firstRequest());
    await clock.advance(10 * 60_000);
    conn = await h.request(ctx(), refreshOf(conn));
    expect(clock.pending()).to.equal(1);
    await clock.advance(TOKEN_TIMEOUT_MS - 1);
    expect(counter.closes).to.equal(0);
    expect(counter.requests).to.equal(2);
    await clock.advance(1);
    expect(counter.closes).to.equal(1);
  });

  it("refresh failure: a failed refresh keeps the old timer", async () => {
    const h = server([newErrorElement({ requestFailOn: [1] })]);
    const conn = await h.request(ctx(), firstRequest());
    await clock.advance(10 * 60_000);
    let failed = false;
    await h.request(ctx(), refreshOf(conn)).catch(() => {
      failed = true;
    });
    expect(failed).to.equal(true);
    await clock.advance(5 * 60_000 - 1);
    expect(counter.closes).to.equal(0);
    await clock.advance(1);
    expect(counter.closes).to.equal(1);
  });

  it("no timer for a first request that fails", async () => {
    const h = server([newErrorElement()]);
    let failed = false;
    await h.request(ctx(), firstRequest()).catch(() => {
      failed = true;
    });
    expect(failed).to.equal(true);
    expect(clock.pending()).to.equal(0);
  });

  it("race: a timer that fires while a refresh is in flight does not close the refreshed connection", async () => {
    let block = false;
    let release: () => void = () => undefined;
    let entered: () => void = () => undefined;
    const blocker: NetworkServiceElement = {
      name: "blocker",
      async request(c, r, n) {
        if (block) {
          entered();
          await new Promise<void>((res) => (release = res));
        }
        return n.request(c, r);
      },
      close: (c, x, n) => n.close(c, x),
    };
    const h = server([blocker]);
    const conn = await h.request(ctx(), firstRequest());
    await clock.advance(TOKEN_TIMEOUT_MS - 1000);
    block = true;
    const inside = new Promise<void>((r) => (entered = r));
    const refreshing = h.request(ctx(), refreshOf(conn));
    await inside;
    // The old deadline passes while the refresh is still running: its close event queues behind it.
    await clock.advance(1000);
    expect(counter.closes).to.equal(0);
    release();
    const refreshed = await refreshing;
    await clock.advance(0);
    expect(counter.closes).to.equal(0);
    expect(clock.pending()).to.equal(1);
    await clock.advance(TOKEN_TIMEOUT_MS - 1000);
    expect(counter.closes).to.equal(1);
    expect(refreshed.id).to.equal("conn-1");
  });

  it("race: many concurrent refreshes and closes leave no timer behind", async () => {
    const h = server();
    const conn = await h.request(ctx(), firstRequest());
    const ops: Array<Promise<unknown>> = [];
    for (let i = 0; i < 200; i++) {
      ops.push(i % 10 === 9 ? h.close(ctx(), conn) : h.request(ctx(), refreshOf(conn)));
    }
    await Promise.allSettled(ops);
    await h.close(ctx(), conn);
    expect(clock.pending()).to.equal(0);
  });

  it("close failure: the timer is stopped even when the rest of the chain fails to close", async () => {
    const injected: InjectErrorOptions = { requestFailOn: [], closeFailOn: () => true };
    const h = server([newErrorElement(injected)]);
    const conn = await h.request(ctx(), firstRequest());
    let failed = false;
    await h.close(ctx(), conn).catch(() => {
      failed = true;
    });
    expect(failed).to.equal(true);
    expect(clock.pending()).to.equal(0);
    await clock.advance(TOKEN_TIMEOUT_MS);
    expect(counter.closes).to.equal(1);
  });

  it("close failure on expiry: the failed close is logged, the connection is forgotten and the timer gone", async () => {
    const h = server([newErrorElement({ requestFailOn: [], closeFailOn: () => true })]);
    const conn = await h.request(ctx(), firstRequest());
    await clock.advance(TOKEN_TIMEOUT_MS);
    expect(counter.closes).to.equal(1);
    expect(clock.pending()).to.equal(0);
    await h.close(ctx(), conn);
    expect(counter.closes).to.equal(1);
  });

  it("rejects a request without the previous segment's expiry", async () => {
    const h = server();
    const req = firstRequest();
    const seg = req.connection?.path?.pathSegments[0];
    if (seg) seg.expires = undefined;
    try {
      await h.request(ctx(), req);
      expect.fail("expected InvalidArgument");
    } catch (err) {
      expect(isStatusError(err, Code.InvalidArgument), String(err)).to.equal(true);
      expect((err as Error).message).to.contain("expiration for the previous path segment cannot be nil");
    }
    expect(counter.requests).to.equal(0);
  });
});
