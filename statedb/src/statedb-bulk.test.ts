/** statedb: `insertMany` into an empty table builds its trees at once and leaves what inserts in turn would. */
import { Code, isStatusError } from "@nsm-ts/base/status";
import { type Endpoint, ep, type Route, setup, tracker } from "@nsm-ts/testing/statedb";
import { expect } from "chai";
import type { Table } from "./index.js";

/** Small deterministic PRNG so failures reproduce. */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

/** Two fresh databases with the same objects written to the table `pick` chooses: one by one, and by insertMany. */
function inTurnAndBulk<T>(pick: (s: ReturnType<typeof setup>) => Table<T, string>, objs: readonly T[]) {
  const inTurn = setup();
  const bulk = setup();
  const w1 = inTurn.db.writeTxn(pick(inTurn));
  for (const o of objs) pick(inTurn).insert(w1, o);
  w1.commit();
  const w2 = bulk.db.writeTxn(pick(bulk));
  pick(bulk).insertMany(w2, objs);
  w2.commit();
  return { inTurn, bulk };
}

describe("statedb: insertMany", () => {
  const services = ["web", "api", "db", "cache"];

  /** Endpoints with repeated names (the later wins), repeated services in one object, labels and unique urls. */
  function endpoints(n: number, seed: number): Endpoint[] {
    const rand = rng(seed);
    const out: Endpoint[] = [];
    for (let i = 0; i < n; i++) {
      const name = `ep-${Math.floor(rand() * n * 0.8)}`;
      const svc = services[Math.floor(rand() * services.length)] as string;
      const service = rand() < 0.1 ? [svc, svc, "api"] : [svc];
      const labels = { app: `a${Math.floor(rand() * 20)}`, zone: `z${i % 3}` };
      out.push(ep(name, service, labels, rand() < 0.5 ? `tcp://${name}/${i}` : undefined));
    }
    return out;
  }

  /** Everything the public API shows of the endpoints table. */
  function view(s: ReturnType<typeof setup>) {
    const r = s.db.readTxn();
    const t = s.endpoints;
    const names = (xs: Endpoint[]): string[] => xs.map((x) => x.name);
    const entries = [...t.all(r)].map((o) => {
      const e = t.getEntry(r, o.name);
      return [o.name, e?.revision, e?.object.url, o.url === undefined ? undefined : t.getBy(r, "byUrl", o.url)?.name];
    });
    const lists = [
      ...services.map((v) => names(t.list(r, "byService", v))),
      ...Array.from({ length: 20 }, (_, a) => names(t.list(r, "byLabel", `app=a${a}`))),
      ...[0, 1, 2].map((z) => names(t.list(r, "byLabel", `zone=z${z}`))),
    ];
    return { count: t.count(r), revision: t.revision(r), entries, lists };
  }

  it("leaves the table as inserting each object in turn does, and later writes work on the built trees", () => {
    for (const n of [2, 30, 3000]) {
      const objs = endpoints(n, n);
      const { inTurn, bulk } = inTurnAndBulk((s) => s.endpoints, objs);
      const gathered = setup();
      // Gathered ahead of the transaction, the way a load arriving in batches does it.
      const b = gathered.endpoints.bulkInsert();
      for (const o of objs) b.add(o);
      // Prepared in steps (a caller yields between them): the primary keys, then two per index (three indexes).
      let steps = 1;
      while (!b.prepare()) steps++;
      expect(steps).to.equal(7);
      const w3 = gathered.db.writeTxn(gathered.endpoints);
      gathered.endpoints.insertMany(w3, b);
      w3.commit();
      expect(() => b.add(ep("late"))).to.throw(/already prepared/);
      expect(view(bulk), `n=${n}`).to.deep.equal(view(inTurn));
      expect(view(gathered), `n=${n} gathered`).to.deep.equal(view(inTurn));
      if (n > 2) expect(view(bulk).lists.some((l) => l.length > 1)).to.equal(true);
      // Updates, deletes and new objects after the load.
      for (const s of [inTurn, bulk]) {
        const w = s.db.writeTxn(s.endpoints);
        for (let i = 0; i < n; i += 3) s.endpoints.deleteKey(w, `ep-${i}`);
        for (let i = 1; i < n; i += 3) s.endpoints.insert(w, ep(`ep-${i}`, ["db"], { app: "a1" }));
        for (let i = 0; i < 50; i++) s.endpoints.insert(w, ep(`new-${i}`, ["web"], { zone: "z1" }));
        w.commit();
      }
      expect(view(bulk), `n=${n} after writes`).to.deep.equal(view(inTurn));
    }
  });

  it("builds LPM indexes as inserts do", () => {
    const routes: Route[] = [];
    for (let i = 0; i < 300; i++)
      routes.push({ id: `r${i}`, prefix: i % 2 ? `198.51.${i % 256}.0/24` : `fd00:${i.toString(16)}::/${32 + (i % 64)}` });
    routes.push({ id: "default4", prefix: "0.0.0.0/0" }, { id: "host", prefix: "198.51.100.7" });
    const { inTurn, bulk } = inTurnAndBulk((s) => s.routes, routes);
    for (const addr of ["198.51.100.7", "198.51.100.8", "198.51.7.1", "203.0.113.1", "fd00:7::1", "fd00:1f::9"]) {
      const want = inTurn.routes.containing(inTurn.db.readTxn(), "byPrefix", addr).map((r) => r.id);
      expect(
        bulk.routes.containing(bulk.db.readTxn(), "byPrefix", addr).map((r) => r.id),
        addr,
      ).to.deep.equal(want);
      expect(bulk.routes.lpm(bulk.db.readTxn(), "byPrefix", addr)?.id).to.equal(want[0]);
    }
  });

  it("fails with AlreadyExists on a unique key shared by two objects, writing nothing", () => {
    const s = setup();
    const w = s.db.writeTxn(s.endpoints);
    expect(() => s.endpoints.insertMany(w, [ep("a", ["web"], {}, "tcp://x"), ep("b"), ep("c", ["db"], {}, "tcp://x")]))
      .to.throw(/index "byUrl" already has key "tcp:\/\/x"/)
      .that.satisfies((e: unknown) => isStatusError(e, Code.AlreadyExists));
    expect(s.endpoints.count(w)).to.equal(0);
    // The transaction stays usable; a later object replacing the holder of a key is no conflict.
    s.endpoints.insertMany(w, [ep("a", ["web"], {}, "tcp://x"), ep("a", ["web"], {}, "tcp://y"), ep("c", ["db"], {}, "tcp://x")]);
    w.commit();
    expect(s.endpoints.getBy(s.db.readTxn(), "byUrl", "tcp://x")?.name).to.equal("c");
  });

  it("inserts in turn into a table that is not empty, and fires watches on commit", () => {
    const s = setup();
    const w = s.db.writeTxn(s.endpoints);
    s.endpoints.insert(w, ep("a", ["web"]));
    w.commit();
    const watch = tracker(s.endpoints.listWatch(s.db.readTxn(), "byService", "db").watch);
    const w2 = s.db.writeTxn(s.endpoints);
    s.endpoints.insertMany(w2, [ep("b", ["db"]), ep("a", ["db"])]);
    w2.commit();
    const r = s.db.readTxn();
    expect(s.endpoints.list(r, "byService", "db").map((e) => e.name)).to.deep.equal(["a", "b"]);
    expect(s.endpoints.list(r, "byService", "web")).to.deep.equal([]);
    return Promise.resolve().then(() => expect(watch.fired).to.equal(true));
  });
});
