/** statedb: transactions, snapshots and revisions. */
import { Code, isStatusError } from "@nsm-ts/base/status";
import { type Endpoint, ep, settle, setup } from "@nsm-ts/testing/statedb";
import { expect } from "chai";
import type { Db } from "./index.js";

describe("statedb: transactions, snapshots and revisions", () => {
  let db: Db;
  let ac: AbortController;
  beforeEach(() => {
    ac = new AbortController();
  });
  afterEach(() => {
    ac.abort();
  });

  it("commits writes to several tables atomically and drops them on abort", () => {
    const s = setup();
    db = s.db;
    const before = db.readTxn();
    const w = db.writeTxn(s.endpoints, s.routes);
    s.endpoints.insert(w, ep("a"));
    s.routes.insert(w, { id: "r1", prefix: "198.51.100.0/24" });
    // The writer sees its own writes; nobody else does until commit.
    expect(s.endpoints.get(w, "a")?.name).to.equal("a");
    expect(s.endpoints.get(db.readTxn(), "a")).to.equal(undefined);
    expect(s.routes.count(db.readTxn())).to.equal(0);
    const after = w.commit();
    expect(s.endpoints.get(after, "a")?.name).to.equal("a");
    expect(s.routes.get(db.readTxn(), "r1")?.prefix).to.equal("198.51.100.0/24");
    expect(s.endpoints.count(before)).to.equal(0);

    const w2 = db.writeTxn(s.endpoints, s.routes);
    s.endpoints.insert(w2, ep("b"));
    s.routes.deleteKey(w2, "r1");
    w2.abort();
    const r = db.readTxn();
    expect(s.endpoints.get(r, "b")).to.equal(undefined);
    expect(s.routes.get(r, "r1")?.id).to.equal("r1");
    expect(() => s.endpoints.insert(w2, ep("c"))).to.throw(/after commit or abort/);
    // Tables are free again.
    db.writeTxn(s.endpoints).abort();
  });

  it("aborts db.update when the function throws and serializes writers on the same table", async () => {
    const s = setup();
    db = s.db;
    const err = await s.db
      .update([s.endpoints, s.routes], async (txn) => {
        s.endpoints.insert(txn, ep("a"));
        await settle();
        s.routes.insert(txn, { id: "r", prefix: "10.0.0.0/8" });
        throw new Error("boom");
      })
      .catch((e: unknown) => e);
    expect((err as Error).message).to.equal("boom");
    expect(s.endpoints.count(db.readTxn())).to.equal(0);
    expect(s.routes.count(db.readTxn())).to.equal(0);

    const order: string[] = [];
    const w = db.writeTxn(s.endpoints);
    expect(() => db.writeTxn(s.endpoints))
      .to.throw()
      .that.satisfies((e: unknown) => isStatusError(e, Code.Aborted));
    const waiting = db.update(s.endpoints, (txn) => {
      order.push(`second sees ${s.endpoints.count(txn)}`);
      s.endpoints.insert(txn, ep("y"));
    });
    s.endpoints.insert(w, ep("x"));
    order.push("first commits");
    w.commit();
    await waiting;
    expect(order).to.deep.equal(["first commits", "second sees 1"]);
    expect(s.endpoints.count(db.readTxn())).to.equal(2);
    // Without a table list, update holds every table.
    const n = await db.update((txn) => {
      s.routes.insert(txn, { id: "r", prefix: "10.0.0.0/8" });
      s.endpoints.deleteKey(txn, "x");
      return s.endpoints.count(txn) + s.routes.count(txn);
    });
    expect(n).to.equal(2);
  });

  it("keeps snapshots isolated while a large write is in progress and after it commits", () => {
    const s = setup();
    db = s.db;
    const n = 20_000;
    const w = db.writeTxn(s.endpoints);
    for (let i = 0; i < n; i++) s.endpoints.insert(w, ep(`e${i}`, [`svc${i % 10}`]));
    w.commit();
    const snap = db.readTxn();
    // A lazy iteration over the snapshot, started before the big write and finished after its commit.
    const lazy = s.endpoints.all(snap)[Symbol.iterator]();
    const firstHalf = Array.from({ length: n / 2 }, () => lazy.next().value as Endpoint);
    const w2 = db.writeTxn(s.endpoints);
    for (let i = 0; i < n; i += 2) s.endpoints.deleteKey(w2, `e${i}`);
    for (let i = 1; i < n; i += 2) s.endpoints.insert(w2, ep(`e${i}`, ["moved"]));
    expect(s.endpoints.count(w2)).to.equal(n / 2);
    expect(s.endpoints.count(snap)).to.equal(n);
    w2.commit();
    const rest = [...{ [Symbol.iterator]: () => lazy }];
    expect(firstHalf.length + rest.length).to.equal(n);
    expect([...firstHalf, ...rest].every((e) => e.service[0]?.startsWith("svc"))).to.equal(true);
    expect(s.endpoints.count(snap)).to.equal(n);
    expect(s.endpoints.list(snap, "byService", "svc3").length).to.equal(n / 10);
    expect(s.endpoints.get(snap, "e0")?.service).to.deep.equal(["svc0"]);
    expect([...s.endpoints.all(snap)].length).to.equal(n);
    const now = db.readTxn();
    expect(s.endpoints.count(now)).to.equal(n / 2);
    expect(s.endpoints.list(now, "byService", "moved").length).to.equal(n / 2);
    expect(s.endpoints.list(now, "byService", "svc3").length).to.equal(0);
    expect(s.endpoints.get(now, "e0")).to.equal(undefined);
  });

  it("gives every change a revision and treats stored objects as immutable", () => {
    const s = setup();
    db = s.db;
    const w = db.writeTxn(s.endpoints, s.routes);
    s.endpoints.insert(w, ep("a"));
    s.routes.insert(w, { id: "r", prefix: "10.0.0.0/8" });
    s.endpoints.insert(w, ep("b"));
    const r = w.commit();
    expect(s.endpoints.getEntry(r, "a")?.revision).to.equal(1);
    expect(s.routes.getEntry(r, "r")?.revision).to.equal(2);
    expect(s.endpoints.getEntry(r, "b")?.revision).to.equal(3);
    expect(s.endpoints.revision(r)).to.equal(3);
    expect(s.routes.revision(r)).to.equal(2);
    expect(db.revision()).to.equal(3);
    const obj = s.endpoints.get(r, "a") as { name: string };
    expect(() => {
      obj.name = "changed";
    }).to.throw(TypeError);
    const w2 = db.writeTxn(s.endpoints);
    expect(s.endpoints.compareAndSwap(w2, 1, ep("a", ["x"]))).to.equal(true);
    expect(s.endpoints.compareAndSwap(w2, 1, ep("a", ["y"]))).to.equal(false);
    expect(s.endpoints.compareAndSwap(w2, 0, ep("new"))).to.equal(true);
    s.endpoints.modify(w2, "b", (b) => ({ ...b, service: ["z"] }));
    expect(() => s.endpoints.modify(w2, "nope", (x) => x))
      .to.throw()
      .that.satisfies((e: unknown) => isStatusError(e, Code.NotFound));
    w2.commit();
    expect(s.endpoints.get(db.readTxn(), "a")?.service).to.deep.equal(["x"]);
    expect(s.endpoints.get(db.readTxn(), "b")?.service).to.deep.equal(["z"]);
  });
});
