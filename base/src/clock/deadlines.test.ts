import { expect } from "chai";
import { DeadlineQueue, MockClock } from "./index.js";

describe("clock: DeadlineQueue", () => {
  let clock: MockClock;
  let fired: string[];
  let q: DeadlineQueue<string>;

  beforeEach(() => {
    clock = new MockClock();
    fired = [];
    q = new DeadlineQueue(clock, (k) => fired.push(k));
  });
  afterEach(() => {
    q.close();
    expect(clock.pending()).to.equal(0);
  });

  it("fires each key at its exact time, in time order, on one timer", async () => {
    const t0 = clock.now();
    q.set("c", t0 + 300);
    q.set("a", t0 + 100);
    q.set("b", t0 + 200);
    expect(clock.pending()).to.equal(1);
    await clock.advance(99);
    expect(fired).to.deep.equal([]);
    await clock.advance(1);
    expect(fired).to.deep.equal(["a"]);
    await clock.advance(200);
    expect(fired).to.deep.equal(["a", "b", "c"]);
    expect(q.size).to.equal(0);
  });

  it("setting a key again replaces its deadline; delete removes it", async () => {
    const t0 = clock.now();
    q.set("a", t0 + 100);
    q.set("b", t0 + 150);
    q.set("a", t0 + 500);
    q.delete("b");
    await clock.advance(499);
    expect(fired).to.deep.equal([]);
    await clock.advance(1);
    expect(fired).to.deep.equal(["a"]);
  });

  it("keeps one timer and a bounded heap through many refreshes of many keys", async () => {
    const t0 = clock.now();
    for (let round = 1; round <= 20; round++) for (let i = 0; i < 100; i++) q.set(`k${i}`, t0 + 1000 * round + i);
    expect(clock.pending()).to.equal(1);
    expect(q.size).to.equal(100);
    expect((q as unknown as { heap: unknown[] }).heap.length).to.be.at.most(200);
    await clock.advance(20_000 + 99);
    expect(fired).to.have.length(100);
    expect(fired[0]).to.equal("k0");
    expect(fired[99]).to.equal("k99");
  });

  it("a callback may set new deadlines", async () => {
    const t0 = clock.now();
    const chained = new DeadlineQueue<string>(clock, (k) => {
      fired.push(k);
      if (k === "a") chained.set("b", clock.now() + 10);
    });
    chained.set("a", t0 + 10);
    await clock.advance(20);
    expect(fired).to.deep.equal(["a", "b"]);
    chained.close();
  });
});
