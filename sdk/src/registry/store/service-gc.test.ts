/** The network service collector on the mock clock: unreferenced services go after two sweeps, others stay. */
import { create } from "@bufbuild/protobuf";
import { type NetworkService, type NetworkServiceEndpoint, NetworkServiceSchema } from "@nsm-ts/api/registry";
import { MockClock } from "@nsm-ts/base/clock";
import { nse } from "@nsm-ts/testing/registry";
import { expect } from "chai";
import { createMemoryStore, type RegistryStore, startServiceCollector } from "./index.js";

describe("registry network service collector", () => {
  let clock: MockClock;
  let ns: RegistryStore<NetworkService>;
  let nses: RegistryStore<NetworkServiceEndpoint>;
  let ac: AbortController;
  let running: Promise<void>;

  beforeEach(() => {
    clock = new MockClock();
    ns = createMemoryStore("ns", { clock });
    nses = createMemoryStore("nse", { clock });
    ac = new AbortController();
    running = startServiceCollector(ns, nses, { periodMs: 1000, clock, signal: ac.signal });
  });
  afterEach(async () => {
    ac.abort();
    await running;
    await ns.close();
    await nses.close();
    expect(clock.pending()).to.equal(0);
  });

  /** Runs one sweep: fires the sweep timer and waits until the collector sleeps again. */
  async function sweep(): Promise<void> {
    await clock.untilPending(1);
    await clock.advance(1000);
    await clock.untilPending(1);
  }
  const names = async (): Promise<string[]> => {
    const out: string[] = [];
    for await (const ev of ns.find(create(NetworkServiceSchema), { watch: false, signal: ac.signal })) out.push(ev.entry.name);
    return out.sort();
  };

  it("deletes a service no endpoint references after two sweeps, and keeps referenced ones", async () => {
    await ns.put(create(NetworkServiceSchema, { name: "orphan" }));
    await ns.put(create(NetworkServiceSchema, { name: "used" }));
    await nses.put(nse("nse-1", ["used"]));
    await sweep();
    expect(await names()).to.deep.equal(["orphan", "used"]);
    await sweep();
    expect(await names()).to.deep.equal(["used"]);
  });

  it("spares a service that an endpoint references, or that changed, between two sweeps", async () => {
    await ns.put(create(NetworkServiceSchema, { name: "late" }));
    await ns.put(create(NetworkServiceSchema, { name: "changed" }));
    await sweep();
    await nses.put(nse("nse-late", ["late"]));
    await ns.put(create(NetworkServiceSchema, { name: "changed", payload: "IP" }));
    await sweep();
    expect(await names()).to.deep.equal(["changed", "late"]);
    await sweep();
    expect(await names()).to.deep.equal(["late"]);
  });
});
