/**
 * The etcd registry store at scale: registrations share a lease per expiry bucket, a running store still deletes
 * each entry at its exact expiry (also entries it only loaded after a restart), and a store restarted over
 * thousands of entries loads them at start and serves Find with all of them.
 */
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import type { NetworkServiceEndpoint } from "@nsm-ts/api/registry";
import {
  storeNse as nse,
  etcdTestPrefix as prefix,
  StoreStream as Stream,
  nseTemplate as tmpl,
  useEtcdStoreSuite,
} from "@nsm-ts/testing/registry";
import { expect } from "chai";
import { createEtcdStore, type RegistryStore } from "./index.js";

describe("registry/store: etcd at scale", function () {
  this.timeout(120_000);
  const suite = useEtcdStoreSuite();
  const { opened, aborts } = suite;

  const open = (
    p: string,
    opts: { leaseBucketMs?: number; loadAtStart?: boolean; loadPageSize?: number } = {},
  ): RegistryStore<NetworkServiceEndpoint> => {
    const s = createEtcdStore("nse", { client: suite.client, prefix: p, ...opts });
    opened.push(s);
    return s;
  };
  /** Lease of every key under the store's prefix, by entry name. */
  const leasesOf = async (p: string): Promise<Map<string, string>> => {
    const res = await suite.client.kv.range({ key: Buffer.from(`${p}nse/`), range_end: Buffer.from(`${p}nse0`) });
    return new Map(res.kvs.map((kv) => [kv.key.toString().slice(`${p}nse/`.length), kv.lease]));
  };
  const entry = (name: string, expiresAtMs: number): NetworkServiceEndpoint => {
    const e = nse(name, ["icmp"], { icmp: { app: name } });
    e.expirationTime = timestampFromMs(expiresAtMs);
    return e;
  };
  /** Puts `entries` with `inFlight` puts at a time. */
  const putAll = async (s: RegistryStore<NetworkServiceEndpoint>, entries: NetworkServiceEndpoint[], inFlight: number): Promise<void> => {
    let next = 0;
    const worker = async (): Promise<void> => {
      for (let i = next++; i < entries.length; i = next++) {
        const e = entries[i] as NetworkServiceEndpoint;
        const t = e.expirationTime;
        await s.put(e, { expiresAtMs: Number(t?.seconds ?? 0n) * 1000 + Math.floor((t?.nanos ?? 0) / 1e6) });
      }
    };
    await Promise.all(Array.from({ length: inFlight }, worker));
  };

  it("registrations whose expiries fall into one bucket share one lease, which outlives each of them", async () => {
    const p = prefix();
    const s = open(p, { leaseBucketMs: 10_000 });
    // Two buckets a minute ahead, 40 entries each, spread inside each bucket.
    const end = Math.ceil((Date.now() + 60_000) / 10_000) * 10_000;
    const entries = [...Array(80).keys()].map((i) => entry(`e${i}`, (i < 40 ? end : end + 10_000) - 9_000 + (i % 40) * 200));
    await putAll(s, entries, 16);
    const leases = await leasesOf(p);
    expect(leases.size).to.equal(80);
    const distinct = new Set(leases.values());
    expect(distinct.size, "one lease per bucket").to.equal(2);
    expect(leases.get("e0")).to.equal(leases.get("e39"));
    expect(leases.get("e40")).to.equal(leases.get("e79"));
    for (const [name, lease] of [
      ["e39", leases.get("e39")],
      ["e79", leases.get("e79")],
    ] as const) {
      const ttl = Number((await suite.client.leaseClient.leaseTimeToLive({ ID: lease ?? "0" })).TTL);
      const exp = Number(entries.find((e) => e.name === name)?.expirationTime?.seconds) * 1000;
      expect(Date.now() + (ttl + 1) * 1000, `lease of ${name} lasts until its expiry`).to.be.at.least(exp);
    }
    // A refresh moves the entry onto the later bucket's lease; the earlier lease stays for the others.
    await s.put(entry("e0", end + 5_000), { expiresAtMs: end + 5_000 });
    const after = await leasesOf(p);
    expect(after.get("e0")).to.equal(after.get("e79"));
    expect(after.get("e1")).to.equal(leases.get("e1"));
  });

  it("deletes an entry at its exact expiry although its shared lease lasts longer", async () => {
    const p = prefix();
    const s = open(p, { leaseBucketMs: 60_000 });
    const ctl = new AbortController();
    aborts.push(ctl);
    const w = new Stream(s.find(tmpl({ networkServiceNames: ["icmp"] }), { watch: true, signal: ctl.signal }));
    const added = w.names(1);
    await new Promise<void>((r) => setImmediate(r));
    const at = Date.now() + 1000;
    await s.put(entry("short", at), { expiresAtMs: at });
    expect(await added).to.deep.equal(["+short"]);
    const lease = (await leasesOf(p)).get("short") ?? "0";
    expect(await w.names(1)).to.deep.equal(["-short"]);
    const seenAt = Date.now();
    expect(seenAt).to.be.at.least(at);
    expect(seenAt - at, "deleted by the store, not by the minute-long lease").to.be.below(20_000);
    expect(Number((await suite.client.leaseClient.leaseTimeToLive({ ID: lease })).TTL)).to.be.above(0);
  });

  it("a store restarted over an expiring entry deletes it at its exact expiry", async () => {
    const p = prefix();
    const a = open(p, { leaseBucketMs: 60_000 });
    const at = Date.now() + 1500;
    await a.put(entry("x", at), { expiresAtMs: at });
    await a.close();
    const b = open(p, { leaseBucketMs: 60_000, loadAtStart: true });
    const ctl = new AbortController();
    aborts.push(ctl);
    const w = new Stream(b.find(tmpl(), { watch: true, signal: ctl.signal }));
    expect(await w.names(1)).to.deep.equal(["+x"]);
    expect(await w.names(1)).to.deep.equal(["-x"]);
    expect(Date.now()).to.be.at.least(at);
    expect(await b.get("x")).to.equal(undefined);
  });

  it("a store restarted over 5,000 registrations loads them at start and finds every one; they share few leases", async () => {
    const p = prefix();
    const a = open(p);
    const base = Date.now() + 120_000;
    const entries = [...Array(5000).keys()].map((i) => entry(`n${i}`, base + (i % 20) * 1000));
    await putAll(a, entries, 64);
    await a.close();
    // 20 s of expiries in 5 s buckets: at most 5 leases (one more if the range straddles a boundary).
    expect(new Set((await leasesOf(p)).values()).size).to.be.at.most(5);
    const b = open(p, { loadAtStart: true, loadPageSize: 500 });
    const found = new Map<string, NetworkServiceEndpoint>();
    for await (const ev of b.find(tmpl({ networkServiceNames: ["icmp"] }), { watch: false, signal: new AbortController().signal })) {
      found.set(ev.entry.name, ev.entry);
    }
    expect(found.size).to.equal(5000);
    // Loaded entries are kept as their stored bytes until used: each comes back whole.
    for (const e of entries) expect(found.get(e.name), e.name).to.deep.equal(e);
    // The indexes came with the load: a Find by one label narrows to its entry.
    const one: string[] = [];
    for await (const ev of b.find(tmpl({ networkServiceLabels: { icmp: { labels: { app: "n4321" } } } }), {
      watch: false,
      signal: new AbortController().signal,
    })) {
      one.push(ev.entry.name);
    }
    expect(one).to.deep.equal(["n4321"]);
  });
});
