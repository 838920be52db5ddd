/** What only the etcd registry store does: replicas sharing one etcd, an etcd restart, leases. */
import type { NetworkServiceEndpoint } from "@nsm-ts/api/registry";
import { Code, isStatusError } from "@nsm-ts/base/status";
import type { EtcdInstance } from "@nsm-ts/testing/etcd";
import {
  storeNse as nse,
  etcdTestPrefix as prefix,
  StoreStream as Stream,
  startEtcdOrSkip,
  nseTemplate as tmpl,
} from "@nsm-ts/testing/registry";
import { expect } from "chai";
import { createEtcdStore, type RegistryStore } from "./index.js";

describe("registry/store: etcd", function () {
  this.timeout(30_000);
  let etcd: EtcdInstance | undefined;
  before(async function () {
    etcd = await startEtcdOrSkip(this);
  });
  after(async () => {
    await etcd?.stop();
    etcd = undefined;
  });

  describe("two stores on the same etcd (two registry replicas)", () => {
    const opened: Array<RegistryStore<NetworkServiceEndpoint>> = [];
    const aborts: AbortController[] = [];
    afterEach(async () => {
      for (const a of aborts.splice(0)) a.abort();
      for (const s of opened.splice(0)) await s.close();
    });

    it("see each other's puts, deletes, expiries and watch events", async () => {
      const p = prefix();
      const a = createEtcdStore("nse", { endpoints: etcd?.endpoints ?? [], prefix: p });
      const b = createEtcdStore("nse", { endpoints: etcd?.endpoints ?? [], prefix: p });
      opened.push(a, b);
      const ctl = new AbortController();
      aborts.push(ctl);
      const w = new Stream(b.find(tmpl({ networkServiceNames: ["icmp"] }), { watch: true, signal: ctl.signal }));
      const first = w.names(3);
      await new Promise<void>((r) => setImmediate(r));
      await a.put(nse("x", ["icmp"]));
      expect((await b.get("x"))?.name).to.equal("x");
      await a.put(nse("y", ["icmp"]), { expiresAtMs: Date.now() + 1000 });
      await b.delete("x");
      expect(await a.get("x")).to.equal(undefined);
      expect(await first).to.deep.equal(["+x", "+y", "-x"]);
      expect(await w.names(1)).to.deep.equal(["-y"]);
      expect(await a.get("y")).to.equal(undefined);
    });

    it("Find on a replica reflects its own writes at once (read-your-writes through the mirror)", async () => {
      const p = prefix();
      const a = createEtcdStore("nse", { endpoints: etcd?.endpoints ?? [], prefix: p });
      opened.push(a);
      const names = async (): Promise<string[]> => {
        const out: string[] = [];
        for await (const ev of a.find(tmpl(), { watch: false, signal: new AbortController().signal })) {
          out.push(ev.entry.name);
        }
        return out.sort();
      };
      expect(await names()).to.deep.equal([]);
      for (let i = 0; i < 5; i++) {
        await a.put(nse(`r${i}`, ["icmp"]));
        expect(await names()).to.have.length(i + 1);
      }
      await a.delete("r0");
      expect(await names()).to.deep.equal(["r1", "r2", "r3", "r4"]);
    });

    it("a restarted replica finds everything; a running replica's watch survives an etcd restart", async () => {
      const p = prefix();
      const a = createEtcdStore("nse", { endpoints: etcd?.endpoints ?? [], prefix: p });
      opened.push(a);
      for (let i = 0; i < 5; i++) await a.put(nse(`k${i}`, ["icmp"]), { expiresAtMs: Date.now() + 60_000 });
      const ctl = new AbortController();
      aborts.push(ctl);
      const w = new Stream(a.find(tmpl(), { watch: true, signal: ctl.signal }));
      expect(await w.names(5)).to.deep.equal(["+k0", "+k1", "+k2", "+k3", "+k4"]);
      await etcd?.restart();
      // The client reconnects with its own backoff; the first calls after the restart may fail with Unavailable.
      for (let attempt = 0; ; attempt++) {
        try {
          await a.put(nse("after-restart", ["icmp"]));
          break;
        } catch (err) {
          if (!isStatusError(err, Code.Unavailable) || attempt > 50) throw err;
        }
      }
      expect(await w.names(1)).to.deep.equal(["+after-restart"]);
      const c = createEtcdStore("nse", { endpoints: etcd?.endpoints ?? [], prefix: p });
      opened.push(c);
      const found: string[] = [];
      for await (const ev of c.find(tmpl(), { watch: false, signal: new AbortController().signal })) {
        found.push(ev.entry.name);
      }
      expect(found.sort()).to.deep.equal(["after-restart", "k0", "k1", "k2", "k3", "k4"]);
    });

    it("compare-and-swap across replicas: the stale one gets Aborted", async () => {
      const p = prefix();
      const a = createEtcdStore("nse", { endpoints: etcd?.endpoints ?? [], prefix: p });
      const b = createEtcdStore("nse", { endpoints: etcd?.endpoints ?? [], prefix: p });
      opened.push(a, b);
      const r = await a.put(nse("x", ["icmp"]));
      const seenByB = await b.getVersioned("x");
      expect(seenByB?.revision).to.equal(r.revision);
      await a.put(nse("x", ["vl3"]), { expectRevision: r.revision });
      const err = await b.put(nse("x", ["other"]), { expectRevision: r.revision }).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(isStatusError(err, Code.Aborted), String(err)).to.equal(true);
      expect((await b.get("x"))?.networkServiceNames).to.deep.equal(["vl3"]);
    });
  });
});
