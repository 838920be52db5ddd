/** CallSlots: at most `max` calls at once, the rest in order; a waiting call leaves on abort or at its deadline. */
import { expect } from "chai";
import { Code, isStatusError } from "../status/index.js";
import { CallSlots } from "./call-slots.js";
import { neverAborted } from "./transport.js";

/** A call that runs until `finish()`, recording when it started. */
function held(started: string[], name: string) {
  let finish!: () => void;
  const done = new Promise<string>((r) => (finish = () => r(name)));
  return {
    fn: () => {
      started.push(name);
      return done;
    },
    finish: () => finish(),
  };
}

const turn = (): Promise<void> => new Promise((r) => setImmediate(r));

describe("grpc typed layer", () => {
  describe("call slots", () => {
    it("runs at most `max` calls at once and the rest in the order they came", async () => {
      const slots = new CallSlots(2);
      const started: string[] = [];
      const calls = ["a", "b", "c", "d", "e"].map((n) => held(started, n));
      const results = calls.map((c, i) => slots.run("/x", neverAborted, undefined, c.fn).then((r) => `${r}${i}`));
      await turn();
      expect(started).to.deep.equal(["a", "b"]);
      expect(slots.counts).to.deep.equal({ active: 2, waiting: 3 });
      calls[1]?.finish();
      await turn();
      expect(started).to.deep.equal(["a", "b", "c"]);
      for (const c of calls) c.finish();
      expect(await Promise.all(results)).to.deep.equal(["a0", "b1", "c2", "d3", "e4"]);
      expect(slots.counts).to.deep.equal({ active: 0, waiting: 0 });
    });

    it("frees the slot of a call that failed", async () => {
      const slots = new CallSlots(1);
      const err = await slots.run("/x", neverAborted, undefined, () => Promise.reject(new Error("boom"))).catch((e: Error) => e.message);
      expect(err).to.equal("boom");
      expect(await slots.run("/x", neverAborted, undefined, async () => "next")).to.equal("next");
      expect(slots.counts).to.deep.equal({ active: 0, waiting: 0 });
    });

    it("a waiting call whose signal aborts fails Canceled and never runs; the queue goes on", async () => {
      const slots = new CallSlots(1);
      const started: string[] = [];
      const first = held(started, "first");
      const p1 = slots.run("/x", neverAborted, undefined, first.fn);
      const ac = new AbortController();
      const p2 = slots.run("/x", ac.signal, undefined, held(started, "aborted").fn);
      const third = held(started, "third");
      const p3 = slots.run("/x", neverAborted, undefined, third.fn);
      ac.abort();
      const err = await p2.catch((e: unknown) => e);
      expect(isStatusError(err, Code.Canceled), String(err)).to.equal(true);
      first.finish();
      third.finish();
      expect(await Promise.all([p1, p3])).to.deep.equal(["first", "third"]);
      expect(started).to.deep.equal(["first", "third"]);
    });

    it("a waiting call fails DeadlineExceeded at its deadline, naming the bound, and never runs", async () => {
      const slots = new CallSlots(1);
      const started: string[] = [];
      const first = held(started, "first");
      const p1 = slots.run("/svc/M", neverAborted, undefined, first.fn);
      const t0 = Date.now();
      const err = await slots.run("/svc/M", neverAborted, new Date(t0 + 150), held(started, "late").fn).catch((e: unknown) => e);
      expect(isStatusError(err, Code.DeadlineExceeded), String(err)).to.equal(true);
      expect((err as Error).message)
        .to.include("/svc/M")
        .and.include("1 call slots");
      expect(Date.now() - t0).to.be.within(140, 1000);
      first.finish();
      await p1;
      expect(started).to.deep.equal(["first"]);
      expect(slots.counts).to.deep.equal({ active: 0, waiting: 0 });
    });
  });
});
