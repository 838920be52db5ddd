/**
 * Tombstones keep keys only: registering and unregistering a large endpoint again and again must not leave the
 * entries behind in the statedb graveyard (it kept the last 16 deletions whole, so six 100 000-label NSEs ran a
 * registry with a 200 MB heap out of memory with nothing registered).
 */
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { create } from "@bufbuild/protobuf";
import { NetworkServiceEndpointSchema } from "@nsm-ts/api/registry";
import { MockClock } from "@nsm-ts/base/clock";
import { expect } from "chai";
import { createMemoryStore } from "./index.js";

setFlagsFromString("--expose-gc");
const gc = runInNewContext("gc") as () => void;

function heapMb(): number {
  gc();
  gc();
  return process.memoryUsage().heapUsed / 2 ** 20;
}

describe("registry memory store tombstones", () => {
  it("register/unregister a 4 MB endpoint 12 times: the heap grows by less than 8 MB (a whole tombstone each would be 48 MB)", async function () {
    this.timeout(20_000);
    const clock = new MockClock();
    const store = createMemoryStore("nse", { clock });
    try {
      const before = heapMb();
      for (let i = 0; i < 12; i++) {
        const labels: Record<string, string> = {};
        // Distinct strings each round, so nothing is shared between rounds.
        for (let j = 0; j < 1000; j++) labels[`k${j}`] = `${i}`.padEnd(2000, "v");
        await store.put(
          create(NetworkServiceEndpointSchema, { name: "big", networkServiceNames: ["svc"], networkServiceLabels: { svc: { labels } } }),
        );
        expect((await store.delete("big"))?.name).to.equal("big");
      }
      const grown = heapMb() - before;
      expect(grown, `heap grew by ${grown.toFixed(1)} MB`).to.be.lessThan(8);
      expect(await store.get("big")).to.equal(undefined);
    } finally {
      await store.close();
    }
  });
});
