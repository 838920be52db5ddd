/** The typed layer's deadlines and cancellation, on both sides of unary and streaming calls. */
import type { MessageInitShape } from "@bufbuild/protobuf";
import type { ConnectionEventSchema } from "@nsm-ts/api/networkservice";
import { aborted, deferred, expectStatus, grpcHarness } from "@nsm-ts/testing/grpc";
import { expect } from "chai";
import { Code, isStatusError, StatusError } from "../status/index.js";

describe("grpc typed layer", () => {
  const { start, closeAll } = grpcHarness();
  afterEach(() => closeAll());

  describe("deadlines and cancellation", () => {
    it("propagates the client deadline to ctx.deadline", async () => {
      const seen = deferred<Date | undefined>();
      const { ns } = await start({
        async request(req, ctx) {
          seen.resolve(ctx.deadline);
          return req.connection ?? {};
        },
      });
      const deadline = new Date(Date.now() + 5000);
      await ns.request({ connection: { id: "a" } }, { deadline });
      const got = await seen.promise;
      expect(got).to.be.instanceOf(Date);
      // grpc-timeout is relative, so the server's copy is late by the transit time: a few ms on an idle
      // machine, more on a loaded CI box; it can never be earlier (beyond ms rounding).
      const skewMs = (got as Date).getTime() - deadline.getTime();
      expect(skewMs).to.be.within(-2, 200);
    });

    it("has no deadline when the client sets none, and timeoutMs works like a relative deadline", async () => {
      const seen: Array<Date | undefined> = [];
      const { ns } = await start({
        async request(req, ctx) {
          seen.push(ctx.deadline);
          return req.connection ?? {};
        },
      });
      await ns.request({});
      const before = Date.now();
      await ns.request({}, { timeoutMs: 3000 });
      expect(seen[0]).to.equal(undefined);
      expect((seen[1] as Date).getTime() - (before + 3000)).to.be.within(-2, 200);
    });

    it("gives the client DeadlineExceeded and aborts the handler when the server outlives the deadline", async () => {
      const reason = deferred<unknown>();
      const { ns } = await start({
        async request(_req, ctx) {
          reason.resolve(await aborted(ctx.signal));
          throw new StatusError(Code.Unavailable, "too late");
        },
      });
      await expectStatus(ns.request({}, { timeoutMs: 50 }), Code.DeadlineExceeded);
      const r = await reason.promise;
      expect(isStatusError(r, Code.DeadlineExceeded), String(r)).to.equal(true);
    });

    it("cancels both sides when the client's signal aborts", async () => {
      const started = deferred();
      const reason = deferred<unknown>();
      const { ns } = await start({
        async request(_req, ctx) {
          started.resolve();
          reason.resolve(await aborted(ctx.signal));
          return {};
        },
      });
      const ac = new AbortController();
      const call = ns.request({}, { signal: ac.signal });
      await started.promise;
      ac.abort();
      await expectStatus(call, Code.Canceled);
      expect(isStatusError(await reason.promise, Code.Canceled)).to.equal(true);
      // An already aborted signal fails fast without a call.
      await expectStatus(ns.request({}, { signal: ac.signal }), Code.Canceled);
    });

    it("cancels a server stream when the consumer breaks: ctx.signal aborts and the generator's finally runs", async () => {
      const returned = deferred();
      const reason = deferred<unknown>();
      const { monitor } = await start(
        {},
        {
          monitor: {
            async *monitorConnections(_sel, ctx) {
              ctx.signal.addEventListener("abort", () => reason.resolve(ctx.signal.reason), { once: true });
              try {
                for (let i = 0; ; i++) yield { type: 1, connections: { [`c${i}`]: { id: `c${i}` } } };
              } finally {
                returned.resolve();
              }
            },
          },
        },
      );
      const got: string[] = [];
      for await (const ev of monitor.monitorConnections({})) {
        got.push(...Object.keys(ev.connections));
        if (got.length === 3) break;
      }
      expect(got).to.deep.equal(["c0", "c1", "c2"]);
      await returned.promise;
      expect(isStatusError(await reason.promise, Code.Canceled)).to.equal(true);
    });

    it("calls return() on a handler blocked in an await when the client's signal aborts", async () => {
      const returned = deferred();
      const { monitor } = await start(
        {},
        {
          monitor: {
            monitorConnections(_sel, ctx) {
              let sent = false;
              // A hand-written iterator, to see return() called while next() is still pending.
              return {
                [Symbol.asyncIterator]() {
                  return {
                    async next(): Promise<IteratorResult<MessageInitShape<typeof ConnectionEventSchema>>> {
                      if (!sent) {
                        sent = true;
                        return { value: { type: 0 }, done: false };
                      }
                      await aborted(ctx.signal);
                      return { value: undefined, done: true };
                    },
                    async return(): Promise<IteratorResult<MessageInitShape<typeof ConnectionEventSchema>>> {
                      returned.resolve();
                      return { value: undefined, done: true };
                    },
                  };
                },
              };
            },
          },
        },
      );
      const ac = new AbortController();
      const it = monitor.monitorConnections({}, { signal: ac.signal })[Symbol.asyncIterator]();
      expect((await it.next()).done).to.equal(false);
      const pending = it.next();
      ac.abort();
      await expectStatus(pending, Code.Canceled);
      await returned.promise;
    });
  });
});
