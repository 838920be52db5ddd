/**
 * One suite, run against the in-memory store and against a real etcd started by `tools/etcdtest`: the same cases
 * prove both stores implement the same contract (Find snapshot + watch, slow watchers, expiry, compare-and-swap).
 */
import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import {
  type NetworkService,
  type NetworkServiceEndpoint,
  NetworkServiceEndpointSchema,
  NetworkServiceLabelsSchema,
  NetworkServiceSchema,
} from "@nsm-ts/api/registry";
import { MockClock } from "@nsm-ts/base/clock";
import { Etcd3 } from "@nsm-ts/base/etcd";
import { Code, isStatusError } from "@nsm-ts/base/status";
import { type EtcdInstance, etcdAvailable, startEtcd } from "@nsm-ts/testing/etcd";
import { expect } from "chai";
import {
  createEtcdStore,
  createMemoryStore,
  type RegistryEntryOf,
  type RegistryKind,
  type RegistryStore,
  type StoreEvent,
} from "./index.js";

type Entry = NetworkService | NetworkServiceEndpoint;

/** What a backend gives the shared cases. */
interface Backend {
  store<K extends RegistryKind>(kind: K, opts?: { watchBuffer?: number }): RegistryStore<RegistryEntryOf[K]>;
  /** Makes an entry registered now with `ttlMs` expire, and resolves once the backend has had the chance to. */
  expiryMs: number;
  /** Lets time pass so entries put with `expiryMs` expire (memory: mock clock; etcd: real time, lease TTL). */
  passExpiry(): Promise<void>;
  /** Now, in the time base the store uses for `expiresAtMs`. */
  now(): number;
}

const nse = (name: string, svc: string[], l: Record<string, Record<string, string>> = {}): NetworkServiceEndpoint =>
  create(NetworkServiceEndpointSchema, {
    name,
    networkServiceNames: svc,
    networkServiceLabels: Object.fromEntries(Object.entries(l).map(([s, labels]) => [s, create(NetworkServiceLabelsSchema, { labels })])),
    url: `tcp://198.51.100.1:${5000 + name.length}`,
  });
const tmpl = (init: Parameters<typeof create<typeof NetworkServiceEndpointSchema>>[1] = {}) => create(NetworkServiceEndpointSchema, init);

/** An open Find with a pull-one-event API; aborted in afterEach. */
class Stream<T extends Entry> {
  private readonly it: AsyncIterator<StoreEvent<T>>;
  constructor(iterable: AsyncIterable<StoreEvent<T>>) {
    this.it = iterable[Symbol.asyncIterator]();
  }
  async next(): Promise<StoreEvent<T>> {
    const r = await this.it.next();
    if (r.done) throw new Error("stream ended");
    return r.value;
  }
  async ended(): Promise<boolean> {
    return (await this.it.next()).done === true;
  }
  async names(n: number): Promise<string[]> {
    const out: string[] = [];
    for (let i = 0; i < n; i++) {
      const ev = await this.next();
      out.push(`${ev.deleted ? "-" : "+"}${ev.entry.name}`);
    }
    return out;
  }
}

function storeSuite(title: string, setup: () => Promise<Backend>, teardown: () => Promise<void>): void {
  describe(title, function () {
    this.timeout(20_000);
    let backend: Backend;
    let stores: Array<RegistryStore<Entry>> = [];
    let aborts: AbortController[] = [];

    beforeEach(async () => {
      backend = await setup();
    });
    afterEach(async () => {
      for (const a of aborts) a.abort();
      aborts = [];
      for (const s of stores) await s.close();
      stores = [];
      await teardown();
    });

    const open = <K extends RegistryKind>(kind: K, opts?: { watchBuffer?: number }): RegistryStore<RegistryEntryOf[K]> => {
      const s = backend.store(kind, opts);
      stores.push(s as RegistryStore<Entry>);
      return s;
    };
    const find = <T extends Entry>(store: RegistryStore<T>, template: T, watch: boolean): Stream<T> => {
      const a = new AbortController();
      aborts.push(a);
      return new Stream(store.find(template, { watch, signal: a.signal }));
    };
    const all = async <T extends Entry>(store: RegistryStore<T>, template: T): Promise<string[]> => {
      const out: string[] = [];
      for await (const ev of store.find(template, { watch: false, signal: new AbortController().signal })) {
        out.push(ev.entry.name);
      }
      return out.sort();
    };

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
}

// ---- memory ----
{
  let clock: MockClock;
  storeSuite(
    "registry/store: memory",
    async () => {
      clock = new MockClock();
      return {
        store: (kind, opts) => createMemoryStore(kind, { clock, ...opts }),
        expiryMs: 1000,
        passExpiry: () => clock.advance(1000),
        now: () => clock.now(),
      };
    },
    async () => {
      expect(clock.pending(), "timers left on the clock").to.equal(0);
    },
  );

  describe("registry/store: memory specifics", () => {
    it("a refresh replaces the expiry: the old deadline passes without deleting", async () => {
      const c = new MockClock();
      const s = createMemoryStore("nse", { clock: c });
      try {
        await s.put(nse("a", ["icmp"]), { expiresAtMs: c.now() + 1000 });
        await c.advance(600);
        await s.put(nse("a", ["icmp"]), { expiresAtMs: c.now() + 1000 });
        await c.advance(600);
        expect(await s.get("a")).to.not.equal(undefined);
        expect(c.pending()).to.equal(1);
        await c.advance(400);
        expect(await s.get("a")).to.equal(undefined);
        expect(c.pending()).to.equal(0);
      } finally {
        await s.close();
      }
    });

    it("close stops expiry timers", async () => {
      const c = new MockClock();
      const s = createMemoryStore("nse", { clock: c });
      await s.put(nse("a", ["icmp"]), { expiresAtMs: c.now() + 1000 });
      expect(c.pending()).to.equal(1);
      await s.close();
      expect(c.pending()).to.equal(0);
    });
  });
}

// ---- etcd ----
{
  let etcd: EtcdInstance | undefined;
  const clients: Etcd3[] = [];
  let prefixSeq = 0;
  const prefix = (): string => `/nsm-ts-test/${process.pid}/${++prefixSeq}/`;

  describe("registry/store: etcd", function () {
    this.timeout(30_000);
    before(async function () {
      const check = etcdAvailable();
      if (!check.available) {
        console.warn(`    skipping the etcd store cases: ${check.reason}`);
        this.skip();
      }
      etcd = await startEtcd();
    });
    after(async () => {
      await etcd?.stop();
      etcd = undefined;
    });

    let current = "";
    storeSuite(
      "shared cases",
      async () => {
        current = prefix();
        const client = new Etcd3({ hosts: etcd?.endpoints ?? [] });
        clients.push(client);
        return {
          store: (kind, opts) => createEtcdStore(kind, { client, prefix: current, ...opts }),
          expiryMs: 1000,
          // The lease expires in etcd on its own; the test waits for the deletion event, not for a fixed time.
          passExpiry: async () => undefined,
          now: () => Date.now(),
        };
      },
      async () => {
        for (const c of clients.splice(0)) c.close();
      },
    );

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

      it("a refresh moves the entry to a new lease and revokes the old one", async () => {
        const p = prefix();
        const client = new Etcd3({ hosts: etcd?.endpoints ?? [] });
        const a = createEtcdStore("nse", { client, prefix: p });
        opened.push(a);
        try {
          await a.put(nse("x", ["icmp"]), { expiresAtMs: Date.now() + 60_000 });
          const before = await client.kv.range({ key: Buffer.from(`${p}nse/x`) });
          const lease1 = before.kvs[0]?.lease ?? "0";
          expect(lease1).to.not.equal("0");
          await a.put(nse("x", ["icmp"]), { expiresAtMs: Date.now() + 60_000 });
          const after = await client.kv.range({ key: Buffer.from(`${p}nse/x`) });
          const lease2 = after.kvs[0]?.lease ?? "0";
          expect(lease2).to.not.equal(lease1);
          // Old leases are revoked best effort, asynchronously: wait until etcd reports each one gone.
          const revoked = async (id: string): Promise<void> => {
            while (Number((await client.leaseClient.leaseTimeToLive({ ID: id })).TTL) !== -1) {
              await new Promise<void>((r) => setImmediate(r));
            }
          };
          await revoked(lease1);
          await a.delete("x");
          await revoked(lease2);
        } finally {
          await a.close();
          client.close();
        }
      });
    });
  });
}
