import { expect } from "chai";
import { AsyncQueue } from "./index.js";

describe("AsyncQueue", () => {
  it("pause: keeps every item, asks the producer to pause at capacity and tells it when there is room", async () => {
    let spaces = 0;
    const q = new AsyncQueue<number>({ capacity: 2, onSpace: () => spaces++ });
    expect(q.push(1)).to.equal(true);
    expect(q.push(2)).to.equal(false);
    expect(q.push(3)).to.equal(false);
    let roomy = false;
    const room = q.waitForSpace().then(() => {
      roomy = true;
    });
    expect((await q.next()).value).to.equal(1);
    await Promise.resolve();
    expect(roomy).to.equal(false);
    expect((await q.next()).value).to.equal(2);
    await room;
    expect(spaces).to.be.greaterThan(0);
    q.end();
    expect(q.push(4)).to.equal(true); // after the end nothing waits for space
    expect((await q.next()).value).to.equal(3);
    expect((await q.next()).done).to.equal(true);
  });

  it("hands an item straight to a waiting consumer; an error ends the stream after the buffered items", async () => {
    const q = new AsyncQueue<string>();
    const first = q.next();
    q.push("a");
    expect((await first).value).to.equal("a");
    q.push("b");
    q.end(new Error("boom"));
    const got: string[] = [];
    let err: unknown;
    try {
      for await (const v of q) got.push(v);
    } catch (e) {
      err = e;
    }
    expect(got).to.deep.equal(["b"]);
    expect((err as Error).message).to.equal("boom");
  });

  it("a consumer leaving early calls onReturn once", async () => {
    let returned = 0;
    const q = new AsyncQueue<number>({ onReturn: () => returned++ });
    q.push(1);
    q.push(2);
    for await (const _ of q) break;
    await q.return();
    expect(returned).to.equal(1);
  });

  it("error overflow: the push past capacity is refused and the consumer gets the error after the buffer", async () => {
    const q = new AsyncQueue<number>({ capacity: 2, overflow: () => new Error("fell behind") });
    const ac = new AbortController();
    expect(q.push(1)).to.equal(true);
    expect(q.push(2)).to.equal(true);
    expect(q.push(3)).to.equal(false);
    expect(q.ended).to.equal(true);
    expect(q.push(4)).to.equal(false);
    expect(await q.take(ac.signal)).to.equal(1);
    expect(await q.take(ac.signal)).to.equal(2);
    let err: unknown;
    try {
      await q.take(ac.signal);
    } catch (e) {
      err = e;
    }
    expect((err as Error).message).to.equal("fell behind");
  });

  it("take: undefined once the signal aborts (also while waiting) or the queue ends cleanly", async () => {
    const q = new AsyncQueue<number>({ capacity: 1, overflow: () => new Error("x") });
    const ac = new AbortController();
    const waiting = q.take(ac.signal);
    ac.abort();
    expect(await waiting).to.equal(undefined);
    q.push(1);
    expect(await q.take(ac.signal)).to.equal(undefined);
    const q2 = new AsyncQueue<number>();
    const live = new AbortController();
    const pending = q2.take(live.signal);
    q2.end();
    expect(await pending).to.equal(undefined);
  });

  it("refuses a capacity below 1", () => {
    expect(() => new AsyncQueue({ capacity: 0 })).to.throw(RangeError);
  });
});
