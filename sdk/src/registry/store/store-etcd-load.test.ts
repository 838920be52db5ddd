/**
 * Loading the etcd store's Find mirror: the sliced, parallel read of a prefix (`scanPrefix`) returns every key
 * exactly once at one revision whatever the names look like, and a store loading while writes go on serves
 * exactly etcd's state, loaded entries expiring at their own time.
 */
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import type { NetworkServiceEndpoint } from "@nsm-ts/api/registry";
import { EtcdStoreBase, scanPrefix } from "@nsm-ts/base/etcd";
import { seedEtcd } from "@nsm-ts/testing/etcd";
import {
  storeNse as nse,
  etcdTestPrefix as prefix,
  StoreStream as Stream,
  nseTemplate as tmpl,
  useEtcdStoreSuite,
} from "@nsm-ts/testing/registry";
import { expect } from "chai";
import { createEtcdStore } from "./index.js";

describe("registry/store: etcd mirror load", function () {
  this.timeout(120_000);
  const suite = useEtcdStoreSuite();
  const { opened, aborts } = suite;

  const base = (): EtcdStoreBase =>
    new EtcdStoreBase({ client: suite.client, prefix: "/", describe: (op) => `test: ${op}`, closedMessage: "closed" });
  const seed = async (p: string, names: Iterable<string>): Promise<void> => {
    await seedEtcd(
      suite.etcd.endpoints,
      (function* () {
        for (const n of names) yield [`${p}${n}`, Buffer.from(`v-${n}`)] as const;
      })(),
    );
  };

  // Clustered decimal names, random hex, long names sharing most bytes, and bytes at both ends of the range.
  const shapes: Record<string, (i: number) => string> = {
    decimal: (i) => `nse-${i}`,
    hex: (i) => `${((i * 2654435761) >>> 0).toString(16).padStart(8, "0")}-${i}`,
    "long shared": (i) => `forwarder-${"x".repeat(60)}-${i % 7}.node-${i}`,
    "edge bytes": (i) => (i % 2 === 0 ? `\u0001${i}` : `\u007f${i}`),
  };
  for (const [shape, name] of Object.entries(shapes)) {
    it(`reads every key of a prefix exactly once at one revision (${shape} names)`, async () => {
      const p = prefix();
      const names = [...Array(3000).keys()].map(name);
      await seed(p, names);
      const b = base();
      const seen = new Map<string, string>();
      const revisions = new Set<string>();
      let pages = 0;
      for await (const page of scanPrefix(b, "load", p, { pageSize: 100 })) {
        pages++;
        revisions.add(page.revision);
        expect(page.kvs.length).to.be.at.most(100);
        for (const kv of page.kvs) {
          const k = kv.key.toString().slice(p.length);
          expect(seen.has(k), `${k} read twice`).to.equal(false);
          seen.set(k, kv.value.toString());
        }
        // Writes after the first page (new keys, deletes, updates) are not part of the snapshot.
        if (pages === 1) {
          await suite.client.put(`${p}${names[2999]}`).value("changed");
          await suite.client.delete().key(`${p}${names[1500]}`);
          await suite.client.put(`${p}zz-new`).value("new");
        }
      }
      expect(revisions.size).to.equal(1);
      expect(seen.size).to.equal(3000);
      for (const n of names) expect(seen.get(n), n).to.equal(`v-${n}`);
      // Sliced reads cost more requests than 30 pages, but a bounded number.
      expect(pages).to.be.below(30 * 6);
    });
  }

  it("with one request in flight, returns every key in key order (each page a slice of the key space)", async () => {
    const p = prefix();
    const names = [...Array(3000).keys()].map((i) => (shapes.hex as (i: number) => string)(i));
    await seed(p, [...names, ...["\u0001a", "\u007fz"]]);
    const keys: Buffer[] = [];
    for await (const page of scanPrefix(base(), "load", p, { pageSize: 100, inFlight: 1 })) for (const kv of page.kvs) keys.push(kv.key);
    expect(keys.length).to.equal(3002);
    for (let i = 1; i < keys.length; i++) {
      if (Buffer.compare(keys[i - 1] as Buffer, keys[i] as Buffer) >= 0) expect.fail(`key ${i} out of order: ${keys[i]}`);
    }
  });

  it("reads an empty prefix and a prefix smaller than one page in one request", async () => {
    const p = prefix();
    const pagesOf = async (q: string): Promise<number[]> => {
      const out: number[] = [];
      for await (const page of scanPrefix(base(), "load", q, { pageSize: 100 })) out.push(page.kvs.length);
      return out;
    };
    expect(await pagesOf(p)).to.deep.equal([0]);
    await seed(p, ["a", "b", "c"]);
    expect(await pagesOf(p)).to.deep.equal([3]);
  });

  it("a store loading while writes go on serves exactly etcd's state; loaded entries expire at their own time", async () => {
    const p = prefix();
    const entry = (name: string, app: string, expiresAtMs: number): NetworkServiceEndpoint => {
      const e = nse(name, ["icmp"], { icmp: { app } });
      e.expirationTime = timestampFromMs(expiresAtMs);
      return e;
    };
    const later = Date.now() + 600_000;
    const a = createEtcdStore("nse", { client: suite.client, prefix: p });
    opened.push(a);
    const names = [...Array(2000).keys()].map((i) => `n${i}`);
    let next = 0;
    await Promise.all(
      Array.from({ length: 64 }, async () => {
        for (let i = next++; i < names.length; i = next++) await a.put(entry(names[i] as string, "old", later), { expiresAtMs: later });
      }),
    );
    // Five expire soon: set last, so a slow machine's seeding does not eat their time.
    const soon = Date.now() + 8000;
    for (let i = 0; i < 5; i++) await a.put(entry(`n${i}`, "old", soon), { expiresAtMs: soon });
    // The restarted store loads in pages of 50 while it takes writes: updates, deletes and new entries.
    const b = createEtcdStore("nse", { client: suite.client, prefix: p, loadAtStart: true, loadPageSize: 50 });
    opened.push(b);
    const writes: Array<Promise<unknown>> = [];
    for (let i = 1000; i < 1100; i++) writes.push(b.put(entry(`n${i}`, "new", later), { expiresAtMs: later }));
    for (let i = 1100; i < 1200; i++) writes.push(b.delete(`n${i}`));
    for (let i = 0; i < 100; i++) writes.push(b.put(entry(`added${i}`, "new", later), { expiresAtMs: later }));
    await Promise.all(writes);
    const state = new Map<string, string>();
    const ctl = new AbortController();
    aborts.push(ctl);
    const w = new Stream(b.find(tmpl(), { watch: true, signal: ctl.signal }));
    for (let i = 0; i < 2000; i++) {
      const ev = await w.next();
      state.set(ev.entry.name, ev.entry.networkServiceLabels.icmp?.labels.app ?? "");
    }
    const expected = new Map<string, string>();
    for (const [i, n] of names.entries()) if (i < 1100 || i >= 1200) expected.set(n, i >= 1000 && i < 1100 ? "new" : "old");
    for (let i = 0; i < 100; i++) expected.set(`added${i}`, "new");
    expect(state).to.deep.equal(expected);
    // The five loaded entries that expire soon go at their expiry, no sooner, through the store's own timer.
    const gone = (await w.names(5)).sort();
    expect(gone).to.deep.equal(["-n0", "-n1", "-n2", "-n3", "-n4"]);
    expect(Date.now()).to.be.at.least(soon);
    expect(await b.get("n0")).to.equal(undefined);
    expect(await b.get("n5")).to.not.equal(undefined);
  });
});
