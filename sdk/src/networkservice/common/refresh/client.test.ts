import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { type Connection, NetworkServiceRequestSchema, PathSegmentSchema } from "@nsm-ts/api/networkservice";
import { MockClock } from "@nsm-ts/base/clock";
import { CallContext } from "@nsm-ts/base/context";
import { Code, isStatusError } from "@nsm-ts/base/status";
import { type Counter, newCounter, newErrorElement } from "@nsm-ts/testing/elements";
import { expect } from "chai";
import { chain, handler, type NetworkServiceElement, type NetworkServiceHandler } from "../../core/index.js";
import * as begin from "../begin/index.js";
import * as metadata from "../metadata/index.js";
import * as updatepath from "../updatepath/index.js";
import * as refresh from "./index.js";

const MIN = 60_000;
const TOKEN_TIMEOUT_MS = 15 * MIN;

describe("refresh client", () => {
  let clock: MockClock;
  let counter: Counter;

  beforeEach(() => {
    clock = new MockClock();
    counter = newCounter();
  });
  afterEach(() => {
    expect(clock.pending(), "timers left on the mock clock").to.equal(0);
  });

  /**
   * Stands in for updatetoken and the server: gives our segment an expiry `ownMs` from now and, when
   * `serverMs` is set, adds the server's segment with that lifetime.
   */
  function tokens(ownMs: number, serverMs?: number): NetworkServiceElement {
    return {
      name: "fake-tokens",
      async request(ctx, r, n) {
        const path = r.connection?.path;
        const own = path?.pathSegments[path.index];
        if (own) own.expires = timestampFromMs(ctx.clock.now() + ownMs);
        if (path && serverMs !== undefined) {
          path.pathSegments.length = path.index + 1;
          path.pathSegments.push(
            create(PathSegmentSchema, { name: "nse", id: "srv", expires: timestampFromMs(ctx.clock.now() + serverMs) }),
          );
        }
        return n.request(ctx, r);
      },
      close: (ctx, c, n) => n.close(ctx, c),
    };
  }

  function client(tail: NetworkServiceElement[], opts: refresh.RefreshOptions = {}): NetworkServiceHandler {
    return handler(chain(updatepath.newClient("nsc"), begin.newClient(), metadata.newClient(), refresh.newClient(opts), counter, ...tail));
  }

  const ctx = () => CallContext.create({ clock });
  const req = (conn?: Connection) => create(NetworkServiceRequestSchema, conn ? { connection: conn } : { connection: { id: "conn-1" } });

  it("valid refresh: re-requests at a third of the token lifetime, again and again", async () => {
    const h = client([tokens(TOKEN_TIMEOUT_MS)]);
    const conn = await h.request(ctx(), req());
    expect(counter.requests).to.equal(1);
    await clock.advance(5 * MIN - 1);
    expect(counter.requests).to.equal(1);
    await clock.advance(1);
    expect(counter.requests).to.equal(2);
    await clock.advance(5 * MIN);
    expect(counter.requests).to.equal(3);
    expect(counter.uniqueRequests).to.equal(1);
    await h.close(ctx(), conn);
  });

  it("stops refreshing at Close", async () => {
    const h = client([tokens(TOKEN_TIMEOUT_MS)]);
    const conn = await h.request(ctx(), req());
    await clock.advance(5 * MIN);
    expect(counter.requests).to.equal(2);
    await h.close(ctx(), conn);
    expect(clock.pending()).to.equal(0);
    await clock.advance(60 * MIN);
    expect(counter.requests).to.equal(2);
  });

  it("restarts the schedule at another Request", async () => {
    const h = client([tokens(TOKEN_TIMEOUT_MS)]);
    let conn = await h.request(ctx(), req());
    await clock.advance(4 * MIN);
    conn = await h.request(ctx(), req(conn));
    expect(counter.requests).to.equal(2);
    expect(clock.pending()).to.equal(1);
    await clock.advance(5 * MIN - 1); // t = 9 min - 1: the first schedule (5 min) must not have fired
    expect(counter.requests).to.equal(2);
    await clock.advance(1);
    expect(counter.requests).to.equal(3);
    await h.close(ctx(), conn);
  });

  it("no refresh when the Request failed", async () => {
    const h = client([tokens(TOKEN_TIMEOUT_MS), newErrorElement()]);
    let failed = false;
    await h.request(ctx(), req()).catch(() => {
      failed = true;
    });
    expect(failed).to.equal(true);
    expect(clock.pending()).to.equal(0);
    await clock.advance(60 * MIN);
    expect(counter.requests).to.equal(1);
  });

  it("uses the shortest token timeout among the path segments", async () => {
    // Our token lives 15 min, the server's 3 min; with 2 segments at index 0 the scale is 0.2: 36 s.
    const h = client([tokens(TOKEN_TIMEOUT_MS, 3 * MIN)]);
    const conn = await h.request(ctx(), req());
    expect(conn.path?.pathSegments).to.have.length(2);
    await clock.advance(36_000 - 1);
    expect(counter.requests).to.equal(1);
    await clock.advance(1);
    expect(counter.requests).to.equal(2);
    await h.close(ctx(), conn);
  });

  it("retries a failed refresh every 200 ms", async () => {
    const h = client([tokens(TOKEN_TIMEOUT_MS), newErrorElement({ requestFailOn: [1, 2] })]);
    const conn = await h.request(ctx(), req());
    await clock.advance(5 * MIN);
    expect(counter.requests).to.equal(2); // first refresh failed
    await clock.advance(199);
    expect(counter.requests).to.equal(2);
    await clock.advance(1);
    expect(counter.requests).to.equal(3); // first retry failed
    await clock.advance(200);
    expect(counter.requests).to.equal(4); // second retry succeeded: back to the normal schedule
    await clock.advance(200);
    expect(counter.requests).to.equal(4);
    await clock.advance(5 * MIN - 200);
    expect(counter.requests).to.equal(5);
    await h.close(ctx(), conn);
  });

  it("gives up retrying at the token expiry", async () => {
    // 60 s tokens: refresh at 20 s, then retries every 200 ms until 60 s.
    const h = client([tokens(MIN), newErrorElement({ requestFailOn: (n) => n > 0 })]);
    const conn = await h.request(ctx(), req());
    await clock.advance(MIN);
    const attempts = counter.requests - 1;
    expect(attempts).to.equal(200); // at 20 s, then 20.2 s … 59.8 s
    expect(clock.pending()).to.equal(0);
    await clock.advance(10 * MIN);
    expect(counter.requests - 1).to.equal(200);
    await h.close(ctx(), conn);
  });

  it("a refresh that comes due while a Request is in flight is dropped in favour of that Request's schedule", async () => {
    let block = false;
    let release: () => void = () => undefined;
    let entered: () => void = () => undefined;
    const blocker: NetworkServiceElement = {
      name: "blocker",
      async request(c, r, n) {
        if (block) {
          block = false;
          entered();
          await new Promise<void>((res) => (release = res));
        }
        return n.request(c, r);
      },
      close: (c, x, n) => n.close(c, x),
    };
    const h = client([tokens(TOKEN_TIMEOUT_MS), blocker]);
    let conn = await h.request(ctx(), req());
    await clock.advance(5 * MIN - 1);
    block = true;
    const inside = new Promise<void>((r) => (entered = r));
    const pending = h.request(ctx(), req(conn));
    await inside;
    await clock.advance(1); // the old schedule fires; its refresh queues behind the Request
    release();
    conn = await pending;
    await clock.advance(0);
    expect(counter.requests).to.equal(2);
    await clock.advance(5 * MIN);
    expect(counter.requests).to.equal(3);
    await h.close(ctx(), conn);
  });

  it("refreshPlan stays within [0.2, 0.4] of the shortest lifetime", () => {
    const now = 1_000_000;
    for (const [index, n] of [
      [0, 1],
      [0, 2],
      [1, 2],
      [0, 4],
      [3, 4],
      [5, 6],
    ] as const) {
      const segs = Array.from({ length: n }, (_, i) =>
        create(PathSegmentSchema, { name: `s${i}`, expires: timestampFromMs(now + (i === n - 1 ? 100_000 : 200_000)) }),
      );
      const conn = create(NetworkServiceRequestSchema, { connection: { path: { index, pathSegments: segs } } }).connection as Connection;
      const plan = refresh.refreshPlan(conn, now, 200);
      expect(plan?.expiresAt).to.equal(now + 100_000);
      expect(plan?.afterMs).to.be.within(20_000, 40_000);
    }
  });

  it("refreshPlan refuses a reply whose segment expiry is not a valid Timestamp, naming the field", () => {
    const segs = [
      create(PathSegmentSchema, { name: "s0", expires: timestampFromMs(2_000_000) }),
      create(PathSegmentSchema, { name: "s1", expires: { seconds: 2000n, nanos: 1_000_000_000 } }),
    ];
    const conn = create(NetworkServiceRequestSchema, { connection: { path: { index: 0, pathSegments: segs } } }).connection as Connection;
    let err: unknown;
    try {
      refresh.refreshPlan(conn, 1_000_000, 200);
    } catch (e) {
      err = e;
    }
    expect(isStatusError(err, Code.InvalidArgument), String(err)).to.equal(true);
    expect((err as Error).message).to.contain("path.path_segments[1].expires.nanos");
  });
});
