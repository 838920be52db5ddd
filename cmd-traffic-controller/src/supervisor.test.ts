import { DeliveryState } from "@nsm-ts/api/intents";
import { MockClock } from "@nsm-ts/base/clock";
import { silentLogger } from "@nsm-ts/base/log";
import { expect } from "chai";
import { runDelivery } from "./delivery/supervisor.js";
import type { Delivery } from "./delivery/target.js";
import { waitForStatus } from "./delivery.fixture.js";
import { memoryObjects, seedShop } from "./intents.fixture.js";
import { createMemoryKv, type Kv } from "./kv/index.js";

describe("traffic-controller: delivery supervisor", () => {
  it("runs a worker per cluster target in parallel, in order per target, and starts over after a broken cluster watch", async () => {
    const inner = createMemoryKv();
    let broken = false;
    // The first watch of the clusters breaks right after it starts, as a watch does when etcd goes away.
    const kv: Kv = {
      ...inner,
      async watch(prefix, after, onEvent, onError) {
        const w = await inner.watch(prefix, after, onEvent, onError);
        if (prefix === "st/cluster/" && !broken) {
          broken = true;
          queueMicrotask(() => onError(new Error("etcd went away")));
        }
        return w;
      },
    };
    const o = memoryObjects(kv);
    const clock = new MockClock();
    const ac = new AbortController();
    const applied: string[] = [];
    let inFlight = 0;
    let maxInFlight = 0;
    let release: () => void = () => undefined;
    const gate = new Promise<void>((r) => {
      release = r;
    });
    await seedShop(o);
    const delivering = runDelivery(
      kv,
      (c) => ({
        async apply(d: Delivery) {
          inFlight++;
          maxInFlight = Math.max(maxInFlight, inFlight);
          // Both clusters' first entries are in flight together before either finishes.
          if (maxInFlight < 2) await gate;
          else release();
          applied.push(`${c.name}#${d.seq}`);
          inFlight--;
        },
      }),
      { clock, log: silentLogger, lockRetryMs: 2_000 },
      ac.signal,
    );
    try {
      // Wait until the broken watch has put the supervisor to sleep, then wake it.
      await clock.untilPending();
      expect((clock.nextAt() ?? 0) - clock.now()).to.equal(2_000);
      await clock.advance(2_000);
      await waitForStatus(o, (all) => all.length === 2 && all.every((s) => s.state === DeliveryState.APPLIED));
      expect(maxInFlight).to.equal(2);
      expect(applied.sort()).to.deep.equal(["edge-a#1", "edge-b#1"]);
    } finally {
      ac.abort();
      await delivering;
      await inner.close();
    }
    expect(clock.pending()).to.equal(0);
  });
});
