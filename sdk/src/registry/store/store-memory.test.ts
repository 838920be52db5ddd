/** What only the in-memory registry store does: expiry timers on its clock. */
import { MockClock } from "@nsm-ts/base/clock";
import { storeNse as nse } from "@nsm-ts/testing/registry";
import { expect } from "chai";
import { createMemoryStore } from "./index.js";

describe("registry/store: memory specifics", () => {
  it("a refresh replaces the expiry: the old deadline passes without deleting", async () => {
    const c = new MockClock();
    const s = createMemoryStore("nse", { clock: c });
    try {
      await s.put(nse("a", ["icmp"]), { expiresAtMs: c.now() + 1000 });
      await c.advance(600);
      await s.put(nse("a", ["icmp"]), { expiresAtMs: c.now() + 1000 });
      await c.advance(600);
      expect(await s.get("a")).to.not.equal(undefined);
      expect(c.pending()).to.equal(1);
      await c.advance(400);
      expect(await s.get("a")).to.equal(undefined);
      expect(c.pending()).to.equal(0);
    } finally {
      await s.close();
    }
  });

  it("close stops expiry timers", async () => {
    const c = new MockClock();
    const s = createMemoryStore("nse", { clock: c });
    await s.put(nse("a", ["icmp"]), { expiresAtMs: c.now() + 1000 });
    expect(c.pending()).to.equal(1);
    await s.close();
    expect(c.pending()).to.equal(0);
  });
});
