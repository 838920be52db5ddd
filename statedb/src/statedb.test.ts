import { Code, isStatusError } from "@nsm-ts/base/status";
import { expect } from "chai";
import { type Change, createDb, type Db, ResyncRequiredError } from "./index.js";

interface Endpoint {
  readonly name: string;
  readonly service: readonly string[];
  readonly labels: Readonly<Record<string, string>>;
  readonly url?: string;
}

interface Route {
  readonly id: string;
  readonly prefix: string;
}

function setup(opts: { graveyardSize?: number; graveyardMax?: number } = {}) {
  const db = createDb({ freeze: true, ...opts });
  const endpoints = db.createTable({
    name: "endpoints",
    primaryKey: (e: Endpoint) => e.name,
    indexes: {
      byService: { kind: "multi", keys: (e: Endpoint) => e.service },
      byLabel: { kind: "multi", keys: (e: Endpoint) => Object.entries(e.labels).map(([k, v]) => `${k}=${v}`) },
      byUrl: { kind: "unique", key: (e: Endpoint) => e.url },
    },
  });
  const routes = db.createTable({
    name: "routes",
    primaryKey: (r: Route) => r.id,
    indexes: { byPrefix: { kind: "lpm", prefixes: (r: Route) => [r.prefix] } },
  });
  return { db, endpoints, routes };
}

const ep = (name: string, service: string[] = ["svc"], labels: Record<string, string> = {}, url?: string): Endpoint =>
  url === undefined ? { name, service, labels } : { name, service, labels, url };

/** Lets promise callbacks run, to check that something did not happen. */
async function settle(): Promise<void> {
  for (let i = 0; i < 3; i++) await new Promise<void>((r) => setImmediate(r));
}

function tracker(p: Promise<void>): { fired: boolean } {
  const s = { fired: false };
  void p.then(() => {
    s.fired = true;
  });
  return s;
}

async function take<T>(it: AsyncIterator<Change<T>>, n: number): Promise<Array<Change<T>>> {
  const out: Array<Change<T>> = [];
  for (let i = 0; i < n; i++) {
    const r = await it.next();
    if (r.done) break;
    out.push(r.value);
  }
  return out;
}

describe("statedb", () => {
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

  it("streams changes with deletions and resumes from a revision", async () => {
    const s = setup();
    db = s.db;
    await db.update(s.endpoints, (t) => {
      s.endpoints.insert(t, ep("a"));
      s.endpoints.insert(t, ep("b"));
      s.endpoints.insert(t, ep("c"));
    });
    const it1 = s.endpoints.changes(0, ac.signal);
    const first = await take(it1, 3);
    expect(first.map((c) => [c.key, c.deleted, c.revision])).to.deep.equal([
      ["a", false, 1],
      ["b", false, 2],
      ["c", false, 3],
    ]);
    // The iterator waits for the next commit.
    const pending = it1.next();
    await db.update(s.endpoints, (t) => {
      s.endpoints.deleteKey(t, "b");
      s.endpoints.insert(t, ep("d"));
    });
    const r = await pending;
    expect(r.value).to.deep.include({ key: "b", deleted: true, revision: 4 });
    expect((r.value as Change<Endpoint>).object.name).to.equal("b");
    await it1.return(undefined);
    const resumeAt = 4;

    await db.update(s.endpoints, (t) => {
      s.endpoints.deleteKey(t, "a");
      s.endpoints.insert(t, ep("c", ["other"]));
      s.endpoints.deleteKey(t, "d");
    });
    const it2 = s.endpoints.changes(resumeAt, ac.signal);
    const resumed = await take(it2, 3);
    expect(resumed.map((c) => [c.key, c.deleted, c.revision])).to.deep.equal([
      ["a", true, 6],
      ["c", false, 7],
      ["d", true, 8],
    ]);
    expect(resumed[1]?.object.service).to.deep.equal(["other"]);
    ac.abort();
    expect((await it2.next()).done).to.equal(true);
  });

  it("iterates changes with for-await until the signal aborts", async () => {
    const s = setup();
    db = s.db;
    await db.update(s.endpoints, (t) => void s.endpoints.insert(t, ep("a")));
    const seen: string[] = [];
    const consumer = (async () => {
      for await (const c of s.endpoints.changes(0, ac.signal)) {
        seen.push(`${c.deleted ? "-" : "+"}${c.key}@${c.revision}`);
        if (seen.length === 3) ac.abort();
      }
    })();
    await db.update(s.endpoints, (t) => void s.endpoints.insert(t, ep("b")));
    await db.update(s.endpoints, (t) => void s.endpoints.deleteKey(t, "a"));
    await consumer;
    expect(seen).to.deep.equal(["+a@1", "+b@2", "-a@3"]);
  });

  it("asks an iterator that resumes from before the bounded graveyard to resync", async () => {
    const s = setup({ graveyardSize: 2 });
    db = s.db;
    await db.update(s.endpoints, (t) => {
      for (const n of ["a", "b", "c", "d"]) s.endpoints.insert(t, ep(n));
    });
    await db.update(s.endpoints, (t) => {
      for (const n of ["a", "b", "c"]) s.endpoints.deleteKey(t, n);
    });
    // Tombstones: a@5 dropped, b@6 and c@7 kept.
    const ok = await take(s.endpoints.changes(5, ac.signal), 2);
    expect(ok.map((c) => c.key)).to.deep.equal(["b", "c"]);
    const err = await s.endpoints
      .changes(4, ac.signal)
      .next()
      .catch((e: unknown) => e);
    expect(err).to.be.instanceOf(ResyncRequiredError);
    expect(isStatusError(err, Code.OutOfRange)).to.equal(true);
    // A fresh iterator starts from the current objects.
    const fresh = await take(s.endpoints.changes(0, ac.signal), 1);
    expect(fresh.map((c) => c.key)).to.deep.equal(["d"]);
  });

  it("keeps tombstones a live tracker has not passed, up to graveyardMax", async () => {
    const s = setup({ graveyardSize: 2, graveyardMax: 4 });
    db = s.db;
    const tombstones = (after: number): string[] =>
      s.endpoints
        .changeBatch(db.readTxn(), after)
        .changes.filter((c) => c.deleted)
        .map((c) => `${c.key}@${c.revision}`);
    await db.update(s.endpoints, (t) => {
      for (const n of ["a", "b", "c", "d", "e", "f"]) s.endpoints.insert(t, ep(n));
    });
    const tracker = s.endpoints.trackDeletes(6);
    await db.update(s.endpoints, (t) => {
      for (const n of ["a", "b", "c"]) s.endpoints.deleteKey(t, n);
    });
    await db.update(s.endpoints, (t) => void s.endpoints.deleteKey(t, "d"));
    expect(tombstones(6), "all kept for the tracker").to.deep.equal(["a@7", "b@8", "c@9", "d@10"]);
    await db.update(s.endpoints, (t) => void s.endpoints.deleteKey(t, "e"));
    expect(() => tombstones(6), "the hard bound wins over a lagging tracker").to.throw(ResyncRequiredError);
    expect(tombstones(7)).to.deep.equal(["b@8", "c@9", "d@10", "e@11"]);
    tracker.advance(11);
    await db.update(s.endpoints, (t) => void s.endpoints.deleteKey(t, "f"));
    expect(tombstones(10), "passed ones go down to graveyardSize").to.deep.equal(["e@11", "f@12"]);
    tracker.close();
  });

  it("finds the most specific prefix for IPv4 and IPv6 addresses and lists containing prefixes", async () => {
    const s = setup();
    db = s.db;
    await db.update(s.routes, (t) => {
      s.routes.insert(t, { id: "default4", prefix: "0.0.0.0/0" });
      s.routes.insert(t, { id: "net16", prefix: "198.51.0.0/16" });
      s.routes.insert(t, { id: "net24", prefix: "198.51.100.0/24" });
      s.routes.insert(t, { id: "host", prefix: "198.51.100.7/32" });
      s.routes.insert(t, { id: "other", prefix: "203.0.113.0/24" });
      s.routes.insert(t, { id: "v6-8", prefix: "fd00::/8" });
      s.routes.insert(t, { id: "v6-64", prefix: "fd00:1:2:3::/64" });
      s.routes.insert(t, { id: "v6-host", prefix: "fd00:1:2:3::42" });
    });
    const r = db.readTxn();
    const lpm = (a: string): string | undefined => s.routes.lpm(r, "byPrefix", a)?.id;
    expect(lpm("198.51.100.7")).to.equal("host");
    expect(lpm("198.51.100.8")).to.equal("net24");
    expect(lpm("198.51.7.1")).to.equal("net16");
    expect(lpm("192.0.2.1")).to.equal("default4");
    expect(lpm("198.51.100.0/25")).to.equal("net24");
    expect(lpm("198.51.0.0/16")).to.equal("net16");
    expect(lpm("fd00:1:2:3::42")).to.equal("v6-host");
    expect(lpm("fd00:1:2:3:ffff::1")).to.equal("v6-64");
    expect(lpm("fd00:9::1")).to.equal("v6-8");
    expect(lpm("2001:db8::1")).to.equal(undefined);
    expect(s.routes.containing(r, "byPrefix", "198.51.100.7").map((x) => x.id)).to.deep.equal(["host", "net24", "net16", "default4"]);
    expect(s.routes.list(r, "byPrefix", "198.51.100.0/24").map((x) => x.id)).to.deep.equal(["net24"]);
    expect(() => s.routes.lpm(r, "byPrefix", "300.1.1.1"))
      .to.throw(/^statedb: address "300\.1\.1\.1" is not an IP address or prefix$/)
      .that.satisfies((e: unknown) => isStatusError(e, Code.InvalidArgument));
    expect(() => s.routes.containing(r, "byPrefix", "198.51.100.0/33")).to.throw(
      /^statedb: address "198\.51\.100\.0\/33" has a bad length$/,
    );
    expect(() => s.routes.list(r, "byPrefix", "fd00::/x")).to.throw(/^statedb: index "byPrefix" key "fd00::\/x" has a bad length$/);
    const w = db.writeTxn(s.routes);
    expect(() => s.routes.insert(w, { id: "bad", prefix: "fd00::1%eth0/64" })).to.throw(
      /^statedb: index "byPrefix" prefix "fd00::1%eth0\/64" is not an IP address or prefix$/,
    );
    w.abort();
    await db.update(s.routes, (t) => void s.routes.deleteKey(t, "host"));
    expect(s.routes.lpm(db.readTxn(), "byPrefix", "198.51.100.7")?.id).to.equal("net24");
    expect(lpm("198.51.100.7")).to.equal("host");
  });

  it("looks objects up by non-unique and unique secondary keys", async () => {
    const s = setup();
    db = s.db;
    await db.update(s.endpoints, (t) => {
      s.endpoints.insert(t, ep("a", ["web", "api"], { app: "x", zone: "1" }, "tcp://a"));
      s.endpoints.insert(t, ep("b", ["web"], { app: "x", zone: "2" }, "tcp://b"));
      s.endpoints.insert(t, ep("c", ["db"], { app: "y", zone: "1" }));
    });
    const r = db.readTxn();
    const names = (xs: Endpoint[]): string[] => xs.map((x) => x.name);
    expect(names(s.endpoints.list(r, "byService", "web"))).to.deep.equal(["a", "b"]);
    expect(names(s.endpoints.list(r, "byService", "api"))).to.deep.equal(["a"]);
    expect(names(s.endpoints.list(r, "byLabel", "zone=1"))).to.deep.equal(["a", "c"]);
    expect(names(s.endpoints.list(r, "byLabel", "app=z"))).to.deep.equal([]);
    expect(s.endpoints.getBy(r, "byUrl", "tcp://b")?.name).to.equal("b");
    expect(names(s.endpoints.prefix(r, "a"))).to.deep.equal(["a"]);
    await db.update(s.endpoints, (t) => void s.endpoints.insert(t, ep("a", ["db"], { app: "x" }, "tcp://a2")));
    const r2 = db.readTxn();
    expect(names(s.endpoints.list(r2, "byService", "web"))).to.deep.equal(["b"]);
    expect(names(s.endpoints.list(r2, "byService", "db"))).to.deep.equal(["a", "c"]);
    expect(s.endpoints.getBy(r2, "byUrl", "tcp://a")).to.equal(undefined);
    const w = db.writeTxn(s.endpoints);
    expect(() => s.endpoints.insert(w, ep("d", [], {}, "tcp://b")))
      .to.throw()
      .that.satisfies((e: unknown) => isStatusError(e, Code.AlreadyExists) && /byUrl/.test((e as Error).message));
    s.endpoints.insert(w, ep("e"));
    w.commit();
    expect(s.endpoints.get(db.readTxn(), "d")).to.equal(undefined);
    expect(s.endpoints.get(db.readTxn(), "e")?.name).to.equal("e");
  });

  it("pages through objects in key order, optionally under a prefix", async () => {
    const s = setup();
    db = s.db;
    await db.update(s.endpoints, (t) => {
      for (const n of ["a/1", "a/2", "a/3", "a/4", "a/5", "b/1", "b/2"]) s.endpoints.insert(t, ep(n));
    });
    const r = db.readTxn();
    const names: string[][] = [];
    let after: string | undefined;
    for (;;) {
      const p = s.endpoints.page(r, after === undefined ? { limit: 2, prefix: "a/" } : { limit: 2, prefix: "a/", after });
      names.push(p.objects.map((o) => o.name));
      if (p.next === undefined) break;
      after = p.next;
    }
    expect(names).to.deep.equal([["a/1", "a/2"], ["a/3", "a/4"], ["a/5"]]);
    const all = s.endpoints.page(r, { limit: 7 });
    expect(all.objects.length).to.equal(7);
    expect(all.next).to.equal(undefined);
    expect(s.endpoints.page(r, { limit: 3, after: "a/5" }).objects.map((o) => o.name)).to.deep.equal(["b/1", "b/2"]);
    expect(s.endpoints.page(r, { limit: 0 }).objects).to.deep.equal([]);
  });

  it("scan seeks to the key after `after` within the prefix, passes revisions, and stops when told", async () => {
    const s = setup();
    db = s.db;
    await db.update(s.endpoints, (t) => {
      for (const n of ["a/1", "a/2", "a/3", "b/1"]) s.endpoints.insert(t, ep(n));
    });
    await db.update(s.endpoints, (t) => s.endpoints.insert(t, ep("a/2")));
    const r = db.readTxn();
    const seen: Array<[string, number]> = [];
    s.endpoints.scan(r, { prefix: "a/", after: "a/1" }, (e) => {
      seen.push([e.key, e.revision]);
      return true;
    });
    expect(seen.map(([k]) => k)).to.deep.equal(["a/2", "a/3"]);
    expect(seen[0]?.[1], "a/2 carries the revision of its update").to.be.greaterThan(seen[1]?.[1] ?? Infinity);
    const firstOnly: string[] = [];
    s.endpoints.scan(r, {}, (e) => {
      firstOnly.push(e.key);
      return false;
    });
    expect(firstOnly).to.deep.equal(["a/1"]);
    const none: string[] = [];
    s.endpoints.scan(r, { prefix: "a/", after: "a/3" }, (e) => {
      none.push(e.key);
      return true;
    });
    expect(none).to.deep.equal([]);
  });

  it("fires a key, prefix, index or table watch once per relevant change and not for unrelated keys", async () => {
    const s = setup();
    db = s.db;
    await db.update(s.endpoints, (t) => {
      for (const n of ["ns1/a", "ns1/b", "ns2/a"]) s.endpoints.insert(t, ep(n, ["svc"]));
    });
    let r = db.readTxn();
    const key = tracker(s.endpoints.getWatch(r, "ns1/a").watch);
    const pfx = tracker(s.endpoints.prefixWatch(r, "ns1/").watch);
    const idx = tracker(s.endpoints.listWatch(r, "byService", "svc2").watch);
    const tbl = tracker(s.endpoints.watch(r));
    const other = tracker(s.routes.watch(r));

    await db.update(s.endpoints, (t) => void s.endpoints.insert(t, ep("ns2/a", ["svc"])));
    await settle();
    expect([key.fired, pfx.fired, idx.fired, tbl.fired, other.fired]).to.deep.equal([false, false, false, true, false]);

    await db.update(s.endpoints, (t) => void s.endpoints.insert(t, ep("ns1/b", ["svc2"])));
    await settle();
    expect([key.fired, pfx.fired, idx.fired]).to.deep.equal([false, true, true]);

    await db.update(s.endpoints, (t) => void s.endpoints.deleteKey(t, "ns1/a"));
    await settle();
    expect(key.fired).to.equal(true);

    // A watch taken from a snapshot that is already stale fires at once (the change happened after it).
    const stale = r;
    r = db.readTxn();
    expect(tracker(s.endpoints.getWatch(r, "ns1/b").watch).fired).to.equal(false);
    await db.update(s.endpoints, (t) => void s.endpoints.insert(t, ep("ns1/b", ["svc3"])));
    const late = tracker(s.endpoints.getWatch(r, "ns1/b").watch);
    const lateOther = tracker(s.endpoints.getWatch(r, "ns2/a").watch);
    const staleIdx = tracker(s.endpoints.listWatch(stale, "byService", "svc3").watch);
    await settle();
    expect([late.fired, lateOther.fired, staleIdx.fired]).to.deep.equal([true, false, true]);

    // Each watch fires once: a second change needs a new watch from a new snapshot.
    let count = 0;
    const loop = (async () => {
      for (let i = 0; i < 2; i++) {
        await s.endpoints.getWatch(db.readTxn(), "k").watch;
        count++;
      }
    })();
    await settle();
    await db.update(s.endpoints, (t) => void s.endpoints.insert(t, ep("k")));
    await settle();
    expect(count).to.equal(1);
    await db.update(s.endpoints, (t) => void s.endpoints.insert(t, ep("unrelated")));
    await settle();
    expect(count).to.equal(1);
    await db.update(s.endpoints, (t) => void s.endpoints.insert(t, ep("k", ["x"])));
    await loop;
    expect(count).to.equal(2);
  });

  it("reports initialization once every registered initializer is done", async () => {
    const s = setup();
    db = s.db;
    expect(s.routes.initialized(db.readTxn())).to.equal(true);
    const doneA = s.endpoints.registerInitializer("k8s");
    const doneB = s.endpoints.registerInitializer("etcd");
    const before = db.readTxn();
    expect(s.endpoints.initialized(before)).to.equal(false);
    let ready = false;
    const waiting = s.endpoints.waitInitialized(ac.signal).then(() => {
      ready = true;
    });
    doneA();
    doneA();
    await settle();
    expect(ready).to.equal(false);
    doneB();
    await waiting;
    expect(s.endpoints.initialized(db.readTxn())).to.equal(true);
    expect(s.endpoints.initialized(before)).to.equal(false);
    const again = s.endpoints.registerInitializer("late");
    const aborted = new AbortController();
    const p = s.endpoints.waitInitialized(aborted.signal).catch((e: unknown) => e);
    aborted.abort(new Error("stop"));
    expect(((await p) as Error).message).to.equal("stop");
    again();
  });
});
