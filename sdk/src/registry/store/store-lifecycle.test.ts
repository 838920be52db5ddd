/**
 * The registry stores' writes and lifetime, against the in-memory store and a real etcd alike: expiry,
 * compare-and-swap, validation, network services, and how close and an aborted signal end watches.
 */
import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { NetworkServiceSchema } from "@nsm-ts/api/registry";
import { Code, isStatusError } from "@nsm-ts/base/status";
import { describeStoreBackends, storeNse as nse, StoreStream as Stream, nseTemplate as tmpl } from "@nsm-ts/testing/registry";
import { expect } from "chai";

describeStoreBackends(({ backend, open, find, all }) => {
  it("expires an entry at expiresAtMs and reports it as deleted", async () => {
    const s = open("nse");
    const w = find(s, tmpl({ networkServiceNames: ["icmp"] }), true);
    const first = w.next();
    await new Promise<void>((r) => setImmediate(r));
    const e = nse("short", ["icmp"]);
    e.expirationTime = timestampFromMs(backend.now() + backend.expiryMs);
    await s.put(e, { expiresAtMs: backend.now() + backend.expiryMs });
    await s.put(nse("long", ["icmp"]));
    expect((await first).entry.name).to.equal("short");
    expect(await w.names(1)).to.deep.equal(["+long"]);
    const gone = w.next();
    await backend.passExpiry();
    const ev = await gone;
    expect(ev.deleted).to.equal(true);
    expect(ev.entry.name).to.equal("short");
    expect(await s.get("short")).to.equal(undefined);
    expect(await s.get("long")).to.not.equal(undefined);
  });

  it("compare-and-swap: a stale revision fails with Aborted and changes nothing", async () => {
    const s = open("nse");
    const r1 = await s.put(nse("a", ["icmp"]), { expectRevision: "0" });
    const v = await s.getVersioned("a");
    expect(v?.revision).to.equal(r1.revision);
    const r2 = await s.put(nse("a", ["vl3"]), { expectRevision: r1.revision });
    expect(r2.revision).to.not.equal(r1.revision);
    const conflict = async (p: Promise<unknown>): Promise<unknown> =>
      p.then(
        () => undefined,
        (e: unknown) => e,
      );
    const e1 = await conflict(s.put(nse("a", ["other"]), { expectRevision: r1.revision }));
    expect(isStatusError(e1, Code.Aborted), String(e1)).to.equal(true);
    const e2 = await conflict(s.put(nse("a", ["other"]), { expectRevision: "0" }));
    expect(isStatusError(e2, Code.Aborted), String(e2)).to.equal(true);
    expect((await s.get("a"))?.networkServiceNames).to.deep.equal(["vl3"]);
    // Of two writers racing from the same revision exactly one wins.
    const results = await Promise.allSettled([
      s.put(nse("a", ["x"]), { expectRevision: r2.revision }),
      s.put(nse("a", ["y"]), { expectRevision: r2.revision }),
    ]);
    expect(results.filter((r) => r.status === "fulfilled")).to.have.length(1);
  });

  it("rejects an entry without a name with InvalidArgument", async () => {
    const s = open("nse");
    const err = await s.put(nse("", ["icmp"])).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(isStatusError(err, Code.InvalidArgument), String(err)).to.equal(true);
  });

  it("stores network services: find by name and payload, watch deletes", async () => {
    const s = open("ns");
    await s.put(create(NetworkServiceSchema, { name: "icmp", payload: "IP" }));
    await s.put(create(NetworkServiceSchema, { name: "l2", payload: "ETHERNET" }));
    const w = find(s, create(NetworkServiceSchema, { payload: "ETHERNET" }), true);
    expect(await w.names(1)).to.deep.equal(["+l2"]);
    expect(await all(s, create(NetworkServiceSchema, { name: "icmp" }))).to.deep.equal(["icmp"]);
    await s.delete("icmp");
    await s.delete("l2");
    expect(await w.names(1)).to.deep.equal(["-l2"]);
  });

  it("close ends open watches with Unavailable", async () => {
    const s = open("nse");
    await s.put(nse("a", ["icmp"]));
    const w = find(s, tmpl(), true);
    await w.next();
    const pending = w.next().then(
      () => undefined,
      (e: unknown) => e,
    );
    await s.close();
    const err = await pending;
    expect(isStatusError(err, Code.Unavailable), String(err)).to.equal(true);
  });

  it("ends a watch normally when its signal aborts", async () => {
    const s = open("nse");
    await s.put(nse("a", ["icmp"]));
    const a = new AbortController();
    const w = new Stream(s.find(tmpl(), { watch: true, signal: a.signal }));
    await w.next();
    const end = w.ended();
    a.abort();
    expect(await end).to.equal(true);
  });
});
