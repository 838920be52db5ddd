import { MockClock } from "@nsm-ts/base/clock";
import { expect } from "chai";
import { createDb, type Db, type ReadTxn, type Table } from "../index.js";
import { createReconciler, pendingStatus, type Reconciler, type ReconcilerOptions, type Status } from "./index.js";

interface Route {
  readonly id: string;
  readonly via: string;
  readonly status: Status;
}

/** A fake outside system: a map of applied routes, with injectable failures and a call log. */
class Kernel {
  readonly routes = new Map<string, string>();
  readonly calls: Array<{ op: string; id: string; at: number }> = [];
  private listeners: Array<{ op: string; resolve: () => void }> = [];
  failUpdates = 0;
  failDeletes = 0;
  constructor(private readonly clock: MockClock) {}
  /** Resolves at the next call of `op`. */
  nextCall(op: string): Promise<void> {
    return new Promise((resolve) => this.listeners.push({ op, resolve }));
  }
  private record(op: string, id: string): void {
    this.calls.push({ op, id, at: this.clock.now() });
    for (const l of this.listeners.filter((x) => x.op === op)) l.resolve();
    this.listeners = this.listeners.filter((x) => x.op !== op);
  }
  ops: ReconcilerOptions<Route, never>["ops"] = {
    update: async (r) => {
      this.record("update", r.id);
      if (this.failUpdates > 0) {
        this.failUpdates--;
        throw new Error(`netlink: cannot add route ${r.id}`);
      }
      this.routes.set(r.id, r.via);
    },
    delete: async (r) => {
      this.record("delete", r.id);
      if (this.failDeletes > 0) {
        this.failDeletes--;
        throw new Error("netlink: busy");
      }
      this.routes.delete(r.id);
    },
  };
  /** The same operations plus prune. */
  withPrune: ReconcilerOptions<Route, never>["ops"] = {
    ...this.ops,
    prune: async (desired) => {
      this.record("prune", desired.map((d) => d.id).join(","));
      const keep = new Set(desired.map((d) => d.id));
      for (const id of [...this.routes.keys()]) if (!keep.has(id)) this.routes.delete(id);
    },
  };
}

const route = (id: string, via = "198.51.100.1"): Route => ({ id, via, status: pendingStatus() });

describe("reconciler", () => {
  let db: Db;
  let table: Table<Route>;
  let clock: MockClock;
  let kernel: Kernel;
  let ac: AbortController;
  let rec: Reconciler<Route> | undefined;

  beforeEach(() => {
    db = createDb({ freeze: true });
    table = db.createTable({ name: "routes", primaryKey: (r: Route) => r.id });
    clock = new MockClock();
    kernel = new Kernel(clock);
    ac = new AbortController();
    rec = undefined;
  });

  afterEach(async () => {
    ac.abort();
    await rec?.stopped;
    expect(clock.pending(), "timers left after abort").to.equal(0);
  });

  function start(extra: Partial<ReconcilerOptions<Route, never>> = {}): Reconciler<Route> {
    rec = createReconciler<Route, never>({
      table,
      getStatus: (r) => r.status,
      setStatus: (r, status) => ({ ...r, status }),
      ops: kernel.ops,
      signal: ac.signal,
      clock,
      ...extra,
    });
    return rec;
  }

  /** Waits (on table watches, not time) until `pred` holds for the committed state. */
  async function until(pred: (txn: ReadTxn) => boolean): Promise<void> {
    for (;;) {
      const txn = db.readTxn();
      if (pred(txn)) return;
      await table.watch(txn);
    }
  }

  const statusOf = (txn: ReadTxn, id: string): Status | undefined => table.get(txn, id)?.status;

  it("applies pending objects, stores error then done, and waits until reconciled", async () => {
    kernel.failUpdates = 1;
    await db.update(table, (t) => void table.insert(t, route("r1")));
    expect(statusOf(db.readTxn(), "r1")?.kind).to.equal("pending");
    const r = start();
    await until((t) => statusOf(t, "r1")?.kind === "error");
    const err = statusOf(db.readTxn(), "r1");
    expect(err).to.deep.include({ kind: "error", message: "netlink: cannot add route r1", revision: 1 });
    let reconciled = false;
    const waiting = r.waitReconciled([route("r1")]).then(() => {
      reconciled = true;
    });
    await clock.advance(99);
    expect(kernel.calls.length, JSON.stringify(kernel.calls)).to.equal(1);
    expect(reconciled).to.equal(false);
    await clock.advance(1);
    await waiting;
    expect(statusOf(db.readTxn(), "r1")).to.deep.include({ kind: "done", revision: 1 });
    expect(kernel.routes.get("r1")).to.equal("198.51.100.1");

    // A change goes back to pending and is applied again; deletes reach the outside too.
    const rev = await db.update(table, (t) => {
      table.insert(t, route("r1", "198.51.100.2"));
      table.insert(t, route("r2"));
      return db.revision();
    });
    await r.waitReconciled(rev);
    expect(kernel.routes.get("r1")).to.equal("198.51.100.2");
    expect(statusOf(db.readTxn(), "r2")?.kind).to.equal("done");
    const del = await db.update(table, (t) => {
      table.deleteKey(t, "r2");
      return db.revision();
    });
    await r.waitReconciled(del);
    expect(kernel.routes.has("r2")).to.equal(false);
    expect(kernel.calls.map((c) => `${c.op}:${c.id}`)).to.deep.equal(["update:r1", "update:r1", "update:r1", "update:r2", "delete:r2"]);
  });

  it("retries with exponential backoff from 100 ms, doubling, capped at 60 s", async () => {
    kernel.failUpdates = 13;
    await db.update(table, (t) => void table.insert(t, route("r1")));
    const r = start();
    await until((t) => statusOf(t, "r1")?.kind === "error");
    await clock.untilPending();
    for (let i = 0; i < 13; i++) {
      const at = clock.nextAt();
      expect(at, `retry timer ${i}`).to.not.equal(undefined);
      await clock.advance((at as number) - clock.now());
    }
    await r.waitReconciled([route("r1")]);
    const times = kernel.calls.map((c) => c.at);
    const gaps = times.slice(1).map((t, i) => t - (times[i] as number));
    expect(gaps).to.deep.equal([100, 200, 400, 800, 1600, 3200, 6400, 12800, 25600, 51200, 60000, 60000, 60000]);
    expect(statusOf(db.readTxn(), "r1")?.kind).to.equal("done");
  });

  it("retries failed deletes with backoff", async () => {
    await db.update(table, (t) => void table.insert(t, route("r1")));
    const r = start();
    await r.waitReconciled([route("r1")]);
    kernel.failDeletes = 2;
    const rev = await db.update(table, (t) => {
      table.deleteKey(t, "r1");
      return db.revision();
    });
    let done = false;
    const waiting = r.waitReconciled(rev).then(() => {
      done = true;
    });
    await clock.untilPending();
    await clock.advance(100);
    expect(done).to.equal(false);
    await clock.advance(200);
    await waiting;
    const deletes = kernel.calls.filter((c) => c.op === "delete").map((c) => c.at - (kernel.calls[0] as { at: number }).at);
    expect(deletes).to.deep.equal([0, 100, 300]);
    expect(kernel.routes.size).to.equal(0);
  });

  it("a new change replaces a failing retry and starts the backoff over", async () => {
    kernel.failUpdates = 3;
    await db.update(table, (t) => void table.insert(t, route("r1")));
    const r = start();
    await until((t) => statusOf(t, "r1")?.kind === "error");
    await clock.untilPending();
    await clock.advance(100); // second failure, next retry would be 200 ms later
    await db.update(table, (t) => void table.insert(t, route("r1", "198.51.100.9")));
    await until((t) => statusOf(t, "r1")?.kind === "error" && table.get(t, "r1")?.via === "198.51.100.9");
    await clock.untilPending();
    expect((clock.nextAt() as number) - clock.now()).to.equal(100);
    await clock.advance(100);
    await r.waitReconciled([route("r1")]);
    const t0 = (kernel.calls[0] as { at: number }).at;
    expect(kernel.calls.map((c) => c.at - t0)).to.deep.equal([0, 100, 100, 200]);
    expect(kernel.routes.get("r1")).to.equal("198.51.100.9");
  });

  it("reconciles a large initial sync and retries errors left by a previous run", async () => {
    const n = 2_500;
    await db.update(table, (t) => {
      for (let i = 0; i < n; i++) table.insert(t, route(`r${i}`));
      table.insert(t, { ...route("old"), status: { kind: "error", message: "from last run", revision: 1 } });
      table.insert(t, { ...route("fine"), status: { kind: "done", revision: 1 } });
    });
    const r = start();
    await r.waitReconciled(db.revision());
    const txn = db.readTxn();
    expect([...table.all(txn)].filter((o) => o.status.kind !== "done")).to.deep.equal([]);
    expect(kernel.routes.size).to.equal(n + 1);
    expect(kernel.routes.has("fine")).to.equal(false);
    expect(kernel.calls.filter((c) => c.op === "update").length).to.equal(n + 1);
  });

  it("prunes what the table does not hold once initialized, and periodically", async () => {
    kernel.routes.set("stale", "x");
    const initDone = table.registerInitializer("source");
    await db.update(table, (t) => void table.insert(t, route("r1")));
    const r = start({ pruneIntervalMs: 10_000, ops: kernel.withPrune });
    await r.waitReconciled([route("r1")]);
    expect(kernel.routes.has("stale"), "no prune before the table is initialized").to.equal(true);
    const pruned = kernel.nextCall("prune");
    initDone();
    await pruned;
    expect([...kernel.routes.keys()]).to.deep.equal(["r1"]);
    kernel.routes.set("leaked", "y");
    await clock.advance(9_999);
    expect(kernel.routes.has("leaked")).to.equal(true);
    await clock.advance(1);
    expect(kernel.routes.has("leaked")).to.equal(false);
    expect(kernel.calls.filter((c) => c.op === "prune").map((c) => c.at - clock.now())).to.deep.equal([-10_000, 0]);
  });

  it("refresh re-applies objects that are done", async () => {
    await db.update(table, (t) => void table.insert(t, route("r1")));
    const r = start({ refreshIntervalMs: 5_000 });
    await r.waitReconciled([route("r1")]);
    const doneRevision = table.getEntry(db.readTxn(), "r1")?.revision;
    kernel.routes.clear(); // someone removed it behind our back
    await clock.advance(5_000);
    expect(kernel.routes.get("r1")).to.equal("198.51.100.1");
    // A successful refresh does not rewrite the status.
    expect(table.getEntry(db.readTxn(), "r1")?.revision).to.equal(doneRevision);
    kernel.failUpdates = 1;
    await clock.advance(5_000);
    await until((t) => statusOf(t, "r1")?.kind === "error");
    await clock.advance(100);
    await until((t) => statusOf(t, "r1")?.kind === "done");
    expect(kernel.calls.filter((c) => c.op === "update").length).to.equal(4);
  });

  it("stops on abort with no timers left and rejects waiters", async () => {
    kernel.failUpdates = 100;
    await db.update(table, (t) => void table.insert(t, route("r1")));
    const r = start({ refreshIntervalMs: 1_000, pruneIntervalMs: 2_000, ops: kernel.withPrune });
    await until((t) => statusOf(t, "r1")?.kind === "error");
    await clock.untilPending();
    expect(clock.pending()).to.equal(1);
    const waiting = r.waitReconciled([route("r1")]).catch((e: unknown) => e);
    ac.abort();
    await r.stopped;
    expect(clock.pending()).to.equal(0);
    expect(((await waiting) as Error).message).to.match(/stopped/);
  });
});
