import { create } from "@bufbuild/protobuf";
import { NetworkServiceRequestSchema } from "@nsm-ts/api/networkservice";
import { MockClock } from "@nsm-ts/base/clock";
import { CallContext } from "@nsm-ts/base/context";
import { Code, StatusError } from "@nsm-ts/base/status";
import { newCheck } from "@nsm-ts/testing/elements";
import { expect } from "chai";
import { chain, handler, type NetworkServiceElement } from "../../core/index.js";
import * as retry from "./index.js";

/** Fails the first `n` Requests (and Closes) with `code`, recording when each call came. */
function flaky(
  n: { requests: number; closes: number },
  code: Code,
  clock: MockClock,
  calls: number[],
  closes: number[],
): NetworkServiceElement {
  return newCheck({
    beforeRequest: (_ctx, req) => {
      calls.push(clock.now());
      // Each attempt must start from the caller's request, not from the previous attempt's edits.
      expect(req.connection?.labels.touched).to.equal(undefined);
      if (req.connection) req.connection.labels.touched = "yes";
      if (n.requests-- > 0) throw new StatusError(code, "injected");
    },
    beforeClose: () => {
      closes.push(clock.now());
      if (n.closes-- > 0) throw new StatusError(code, "injected");
    },
  });
}

describe("retry (client)", () => {
  let clock: MockClock;
  let calls: number[];
  let closes: number[];

  beforeEach(() => {
    clock = new MockClock();
    calls = [];
    closes = [];
  });
  afterEach(() => expect(clock.pending(), "timers left").to.equal(0));

  const req = () => create(NetworkServiceRequestSchema, { connection: { id: "c1" } });
  const ctx = (timeoutMs = 15_000) => CallContext.create({ clock, deadline: clock.now() + timeoutMs });

  /** Runs `p` while moving the clock on in steps until it settles. */
  async function drive<T>(p: Promise<T>, stepMs = 50): Promise<T> {
    let done = false;
    const out = p.finally(() => {
      done = true;
    });
    out.catch(() => undefined);
    while (!done) await clock.advance(stepMs);
    return out;
  }

  it("retries a transient failure every interval until it succeeds", async () => {
    const h = handler(
      chain(retry.newClient({ intervalMs: 200 }), flaky({ requests: 3, closes: 0 }, Code.Unavailable, clock, calls, closes)),
    );
    const start = clock.now();
    const conn = await drive(h.request(ctx(), req()));
    expect(conn.id).to.equal("c1");
    expect(calls.map((t) => t - start)).to.deep.equal([0, 200, 400, 600]);
  });

  it("returns errors about the request itself at once", async () => {
    for (const code of [Code.InvalidArgument, Code.PermissionDenied, Code.Unauthenticated, Code.Canceled]) {
      calls = [];
      const h = handler(chain(retry.newClient(), flaky({ requests: 1, closes: 0 }, code, clock, calls, closes)));
      const err = await h.request(ctx(), req()).catch((e: unknown) => e as StatusError);
      expect((err as StatusError).code).to.equal(code);
      expect(calls).to.have.length(1);
    }
  });

  it("stops at the call's deadline with the last error", async () => {
    const h = handler(
      chain(retry.newClient({ intervalMs: 200 }), flaky({ requests: 100, closes: 0 }, Code.Unavailable, clock, calls, closes)),
    );
    const err = await drive(h.request(ctx(1000), req())).catch((e: unknown) => e as StatusError);
    expect((err as StatusError).code).to.equal(Code.Unavailable);
    // Attempts at 0, 200, 400, 600, 800; one at 1000 would be past the deadline.
    expect(calls).to.have.length(5);
  });

  it("stops after tryTimeoutMs even without a deadline", async () => {
    const h = handler(
      chain(
        retry.newClient({ intervalMs: 100, tryTimeoutMs: 300 }),
        flaky({ requests: 100, closes: 0 }, Code.Unavailable, clock, calls, closes),
      ),
    );
    await drive(h.request(CallContext.create({ clock }), req())).catch(() => undefined);
    // Attempts at 0, 100, 200, 300; one at 400 would exceed the 300 ms budget.
    expect(calls).to.have.length(4);
  });

  it("stops when the caller aborts", async () => {
    const h = handler(
      chain(retry.newClient({ intervalMs: 200 }), flaky({ requests: 100, closes: 0 }, Code.Unavailable, clock, calls, closes)),
    );
    const abort = new AbortController();
    const p = h.request(CallContext.create({ clock, signal: abort.signal }), req());
    const failed = p.catch((e: unknown) => e as StatusError);
    await clock.advance(450);
    abort.abort();
    const err = await failed;
    expect((err as StatusError).code).to.equal(Code.Unavailable);
    expect(calls).to.have.length(3);
  });

  it("passes Close through without retrying it (begin retries it while it holds the state)", async () => {
    const h = handler(
      chain(retry.newClient({ intervalMs: 200 }), flaky({ requests: 0, closes: 5 }, Code.Unavailable, clock, calls, closes)),
    );
    const conn = await h.request(ctx(), req());
    const err = await h.close(ctx(), conn).catch((e: unknown) => e as StatusError);
    expect((err as StatusError).code).to.equal(Code.Unavailable);
    expect(closes).to.have.length(1);
  });
});
