/**
 * The registry stores' Find, against the in-memory store and a real etcd alike: templates, copies, the snapshot
 * and the watch that follows, slow watchers, and deletes.
 */
import { create } from "@bufbuild/protobuf";
import { NetworkServiceLabelsSchema } from "@nsm-ts/api/registry";
import { Code, isStatusError } from "@nsm-ts/base/status";
import { describeStoreBackends, storeNse as nse, nseTemplate as tmpl } from "@nsm-ts/testing/registry";
import { expect } from "chai";

describeStoreBackends(({ open, find, all }) => {
  it("registers and finds endpoints by name, service, label and url; watch=false ends", async () => {
    const s = open("nse");
    await s.put(nse("a", ["icmp"], { icmp: { app: "x" } }));
    await s.put(nse("bb", ["icmp", "vl3"], { icmp: { app: "y" } }));
    await s.put(nse("ccc", ["vl3"]));
    expect(await all(s, tmpl())).to.deep.equal(["a", "bb", "ccc"]);
    expect(await all(s, tmpl({ name: "bb" }))).to.deep.equal(["bb"]);
    expect(await all(s, tmpl({ name: "zz" }))).to.deep.equal([]);
    expect(await all(s, tmpl({ networkServiceNames: ["icmp"] }))).to.deep.equal(["a", "bb"]);
    expect(await all(s, tmpl({ networkServiceNames: ["icmp", "vl3"] }))).to.deep.equal(["bb"]);
    const byLabel = tmpl({ networkServiceLabels: { icmp: create(NetworkServiceLabelsSchema, { labels: { app: "y" } }) } });
    expect(await all(s, byLabel)).to.deep.equal(["bb"]);
    expect(await all(s, tmpl({ url: ":5003" }))).to.deep.equal(["ccc"]);
    const got = await s.get("bb");
    expect(got?.networkServiceNames).to.deep.equal(["icmp", "vl3"]);
    expect(got?.networkServiceLabels.icmp?.labels).to.deep.equal({ app: "y" });
    expect(await s.get("zz")).to.equal(undefined);
  });

  it("hands out copies: mutating a found entry does not change the store", async () => {
    const s = open("nse");
    const e = nse("a", ["icmp"]);
    await s.put(e);
    e.url = "changed-after-put";
    const got = await s.get("a");
    expect(got?.url).to.not.equal("changed-after-put");
    if (got) got.url = "changed-after-get";
    expect((await s.get("a"))?.url).to.not.equal("changed-after-get");
  });

  it("finds with watch: the snapshot, then later registers and unregisters", async () => {
    const s = open("nse");
    await s.put(nse("a", ["icmp"]));
    const w = find(s, tmpl({ networkServiceNames: ["icmp"] }), true);
    expect(await w.names(1)).to.deep.equal(["+a"]);
    await s.put(nse("other", ["vl3"]));
    await s.put(nse("b", ["icmp"]));
    await s.delete("a");
    expect(await w.names(2)).to.deep.equal(["+b", "-a"]);
  });

  it("finds by label with watch: only matching entries, including a relabel", async () => {
    const s = open("nse");
    const byLabel = tmpl({ networkServiceLabels: { icmp: create(NetworkServiceLabelsSchema, { labels: { app: "x" } }) } });
    await s.put(nse("a", ["icmp"], { icmp: { app: "x" } }));
    await s.put(nse("b", ["icmp"], { icmp: { app: "y" } }));
    const w = find(s, byLabel, true);
    expect(await w.names(1)).to.deep.equal(["+a"]);
    await s.put(nse("c", ["icmp"], { icmp: { app: "y" } }));
    await s.put(nse("b", ["icmp"], { icmp: { app: "x", zone: "z" } }));
    await s.put(nse("d", ["icmp"], { icmp: { app: "x" } }));
    expect(await w.names(2)).to.deep.equal(["+b", "+d"]);
    const nameOnly = find(s, tmpl({ name: "d" }), true);
    expect(await nameOnly.names(1)).to.deep.equal(["+d"]);
    await s.delete("d");
    expect(await nameOnly.names(1)).to.deep.equal(["-d"]);
    expect(await w.names(1)).to.deep.equal(["-d"]);
  });

  it("a slow receiver is cut off with ResourceExhausted; a fast one gets everything; writes never block", async () => {
    const s = open("nse", { watchBuffer: 10 });
    await s.put(nse("seed", ["icmp"]));
    const slow = find(s, tmpl(), true);
    const fast = find(s, tmpl(), true);
    // Both have taken their snapshot (and so are registered) once they delivered the seed.
    expect(await slow.names(1)).to.deep.equal(["+seed"]);
    expect(await fast.names(1)).to.deep.equal(["+seed"]);
    const n = 30;
    const fastGot = fast.names(n);
    for (let i = 0; i < n; i++) {
      await s.put(nse(`e${i}`, ["icmp"]));
      // Registrations arrive as separate I/O events in a server; give the readers that turn too.
      await new Promise<void>((r) => setImmediate(r));
    }
    expect(await fastGot).to.deep.equal(Array.from({ length: n }, (_, i) => `+e${i}`));
    // The slow one still receives what fit in its buffer, in order, then the stream ends with the error.
    expect(await slow.names(10)).to.deep.equal(Array.from({ length: 10 }, (_, i) => `+e${i}`));
    let err: unknown;
    try {
      await slow.next();
    } catch (e) {
      err = e;
    }
    expect(isStatusError(err, Code.ResourceExhausted), String(err)).to.equal(true);
    // The fast watcher is still live.
    await s.put(nse("after", ["icmp"]));
    expect(await fast.names(1)).to.deep.equal(["+after"]);
  });

  it("receives all registers and unregisters, in order", async () => {
    const s = open("nse");
    const w = find(s, tmpl(), true);
    const got = w.names(20);
    // The first pull started the watch; with an empty store the snapshot is empty, so every put is live.
    await new Promise<void>((r) => setImmediate(r));
    const want: string[] = [];
    for (let i = 0; i < 10; i++) {
      await s.put(nse(`n${i}`, ["icmp"]));
      want.push(`+n${i}`);
    }
    for (let i = 0; i < 10; i++) {
      await s.delete(`n${i}`);
      want.push(`-n${i}`);
    }
    const names = await got;
    expect(names).to.deep.equal(want);
  });

  it("reports a delete with the full deleted entry", async () => {
    const s = open("nse");
    await s.put(nse("a", ["icmp"], { icmp: { app: "x" } }));
    const w = find(s, tmpl({ networkServiceNames: ["icmp"] }), true);
    await w.next();
    const removed = await s.delete("a");
    expect(removed?.name).to.equal("a");
    const ev = await w.next();
    expect(ev.deleted).to.equal(true);
    expect(ev.entry.name).to.equal("a");
    expect(ev.entry.networkServiceLabels.icmp?.labels).to.deep.equal({ app: "x" });
    expect(await s.get("a")).to.equal(undefined);
    expect(await s.delete("a")).to.equal(undefined);
  });
});
