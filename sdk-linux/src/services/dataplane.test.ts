import { MockClock } from "@nsm-ts/base/clock";
import { Code, StatusError } from "@nsm-ts/base/status";
import { expect } from "chai";
import type { Netns } from "../netns.js";
import type { NftExecutor, NftTable, NftTableRef } from "../nft/index.js";
import { createServiceDataplane, type ServiceDataplane, type ServiceRulesStatus } from "./dataplane.js";
import { serviceTableName } from "./render.js";
import type { ServiceView } from "./view.js";

/** A kernel of tables per namespace, with failures on demand. */
class FakeNft implements NftExecutor {
  readonly tables = new Map<string, Map<string, NftTable | NftTableRef>>();
  readonly calls: string[] = [];
  failApply = 0;
  gone = new Set<string>();
  readonly #deleted = new Map<string, () => void>();
  /** Resolves when `name` is deleted from some namespace. */
  deleted(name: string): Promise<void> {
    return new Promise((resolve) => this.#deleted.set(name, resolve));
  }
  #ns(ns: Netns): Map<string, NftTable | NftTableRef> {
    if (this.gone.has(ns.url)) throw new StatusError(Code.NotFound, `netns ${ns.url} not found`);
    let m = this.tables.get(ns.url);
    if (!m) {
      m = new Map();
      this.tables.set(ns.url, m);
    }
    return m;
  }
  async apply(ns: Netns, t: NftTable): Promise<void> {
    this.calls.push(`apply ${ns.url} ${t.name}`);
    if (this.failApply > 0) {
      this.failApply--;
      throw new StatusError(Code.Internal, "nft: apply: Could not process rule: No buffer space available");
    }
    this.#ns(ns).set(t.name, t);
  }
  async delete(ns: Netns, t: NftTableRef): Promise<void> {
    this.calls.push(`delete ${ns.url} ${t.name}`);
    this.#ns(ns).delete(t.name);
    this.#deleted.get(t.name)?.();
  }
  async list(ns: Netns, prefix = ""): Promise<NftTableRef[]> {
    return [...this.#ns(ns).keys()].filter((n) => n.startsWith(prefix)).map((name) => ({ family: "inet", name }));
  }
  async run(): Promise<void> {}
  async query(): Promise<string> {
    return "";
  }
  names(url: string): string[] {
    return [...(this.tables.get(url)?.keys() ?? [])].sort();
  }
}

const netns = (url: string, inode: number): Netns => ({ url, dev: 4, inode }) as unknown as Netns;
const view = (name: string, revision = "1", backend = "198.51.100.11"): ServiceView => ({
  name,
  revision,
  frontends: [{ address: "203.0.113.1", port: 80, protocol: "tcp", policy: "round-robin", portName: "" }],
  backends: [
    { name: "b", address: backend, port: 8080, protocol: "tcp", portName: "", node: "n1", zone: "z", weight: 1, health: "healthy" },
  ],
});
const here = { node: "n1", zone: "z" };

describe("services: data plane reconciler", () => {
  let clock: MockClock;
  let nft: FakeNft;
  let ac: AbortController;
  let dp: ServiceDataplane;
  const c1 = netns("/proc/101/ns/net", 101);
  const c2 = netns("/proc/102/ns/net", 102);

  beforeEach(() => {
    clock = new MockClock();
    nft = new FakeNft();
    ac = new AbortController();
    dp = createServiceDataplane({ signal: ac.signal, exec: nft, clock, refreshIntervalMs: 0 });
  });
  afterEach(async () => {
    ac.abort();
    await dp.stopped;
    expect(clock.pending(), "timers left").to.equal(0);
  });

  async function until(pred: (s: ServiceRulesStatus) => boolean): Promise<ServiceRulesStatus> {
    const stop = new AbortController();
    try {
      for await (const s of dp.watchStatus(stop.signal)) if (pred(s)) return s;
    } finally {
      stop.abort();
    }
    throw new Error("status stream ended");
  }

  it("applies one table per (namespace, service) and reports each reconciled", async () => {
    await dp.waitReconciled(await dp.setNamespace(c1, here, [view("web"), view("db")]));
    await dp.waitReconciled(await dp.setNamespace(c2, here, [view("web")]));
    expect(nft.names(c1.url)).to.deep.equal([serviceTableName("db"), serviceTableName("web")].sort());
    expect(nft.names(c2.url)).to.deep.equal([serviceTableName("web")]);
    expect(
      dp
        .statuses()
        .map((s) => `${s.netns} ${s.service} ${s.state}`)
        .sort(),
    ).to.deep.equal(["/proc/101/ns/net db reconciled", "/proc/101/ns/net web reconciled", "/proc/102/ns/net web reconciled"]);
    // Setting the same view objects again applies nothing.
    const before = nft.calls.length;
    const v = view("x");
    await dp.waitReconciled(await dp.setNamespace(c2, here, [v]));
    await dp.waitReconciled(await dp.setNamespace(c2, here, [v]));
    expect(nft.calls.slice(before)).to.deep.equal([
      `delete ${c2.url} ${serviceTableName("web")}`,
      `apply ${c2.url} ${serviceTableName("x")}`,
    ]);
  });

  it("reports an error with the message, retries with backoff on the clock, then reconciles", async () => {
    nft.failApply = 2;
    const rev = await dp.setNamespace(c1, here, [view("web", "5")]);
    const failed = await until((s) => s.state === "error");
    expect(failed).to.deep.include({ service: "web", revision: "5" });
    expect(failed.message).to.contain("No buffer space available");
    expect(dp.serviceStatus("web")?.state).to.equal("error");
    await clock.advance(100); // first retry: fails again
    await until((s) => s.state === "error" && nft.calls.length === 2);
    await clock.advance(199);
    expect(nft.calls).to.have.length(2);
    await clock.advance(1); // second retry after 200 ms
    await dp.waitReconciled(rev);
    expect(dp.serviceStatus("web")).to.deep.include({ state: "reconciled", revision: "5" });
  });

  it("updates a service everywhere it is programmed, removes it, and empties a namespace on close", async () => {
    await dp.setNamespace(c1, here, [view("web"), view("db")]);
    await dp.waitReconciled(await dp.setNamespace(c2, here, [view("web")]));
    const rev = await dp.upsert(view("web", "2", "198.51.100.12"));
    expect(dp.serviceStatus("web")?.state).to.equal("pending");
    await dp.waitReconciled(rev);
    const t = nft.tables.get(c2.url)?.get(serviceTableName("web")) as NftTable;
    expect(t.chains[1]?.rules[0]).to.contain("198.51.100.12");
    await dp.waitReconciled(await dp.remove("web"));
    expect(nft.names(c2.url)).to.deep.equal([]);
    await dp.waitReconciled(await dp.removeNamespace(c1));
    expect(nft.names(c1.url)).to.deep.equal([]);
    expect(dp.statuses()).to.deep.equal([]);
  });

  it("attaches client namespaces to the node's services, counted, and follows service changes into them", async () => {
    dp = createServiceDataplane({ signal: ac.signal, exec: nft, clock, refreshIntervalMs: 0, where: here });
    await dp.waitReconciled(await dp.upsert(view("web")));
    await dp.waitReconciled(await dp.attach(c1));
    await dp.waitReconciled(await dp.attach(c1)); // a second connection of the same client
    expect(nft.names(c1.url)).to.deep.equal([serviceTableName("web")]);
    await dp.waitReconciled(await dp.upsert(view("db")));
    await dp.waitReconciled(await dp.attach(c2));
    expect(nft.names(c2.url)).to.deep.equal([serviceTableName("db"), serviceTableName("web")].sort());
    expect(nft.names(c1.url)).to.deep.equal([serviceTableName("db"), serviceTableName("web")].sort());
    await dp.waitReconciled(await dp.detach(c1));
    expect(nft.names(c1.url)).to.have.length(2);
    await dp.waitReconciled(await dp.detach(c1));
    expect(nft.names(c1.url)).to.deep.equal([]);
    await dp.waitReconciled(await dp.remove("web"));
    expect(nft.names(c2.url)).to.deep.equal([serviceTableName("db")]);
    await dp.waitReconciled(await dp.attach(c1));
    expect(nft.names(c1.url)).to.deep.equal([serviceTableName("db")]);
  });

  it("a namespace that vanished counts as cleaned up", async () => {
    await dp.waitReconciled(await dp.setNamespace(c1, here, [view("web")]));
    nft.gone.add(c1.url);
    await dp.waitReconciled(await dp.removeNamespace(c1));
  });

  it("prunes tables of ours that nobody wants once synced, and only then", async () => {
    await dp.waitReconciled(await dp.setNamespace(c1, here, [view("web")]));
    await nft.apply(c1, { family: "inet", name: serviceTableName("stale"), chains: [] });
    await clock.advance(60_000);
    expect(nft.names(c1.url)).to.include(serviceTableName("stale"));
    const pruned = nft.deleted(serviceTableName("stale"));
    dp.synced();
    await pruned;
    expect(nft.names(c1.url)).to.deep.equal([serviceTableName("web")]);
  });
});
