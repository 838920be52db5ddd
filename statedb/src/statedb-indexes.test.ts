/** statedb: indexes, paging, watches and initializers. */
import { Code, isStatusError } from "@nsm-ts/base/status";
import { type Endpoint, ep, settle, setup, tracker } from "@nsm-ts/testing/statedb";
import { expect } from "chai";
import type { Db } from "./index.js";

describe("statedb: indexes, paging, watches and initializers", () => {
  let db: Db;
  let ac: AbortController;
  beforeEach(() => {
    ac = new AbortController();
  });
  afterEach(() => {
    ac.abort();
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
