import { create } from "@bufbuild/protobuf";
import { type Network, NetworkSchema, SecurityGroupSchema } from "@nsm-ts/api/resources";
import { EtcdStoreBase, newEtcdClient } from "@nsm-ts/base/etcd";
import { Code, StatusError } from "@nsm-ts/base/status";
import { createDb } from "@nsm-ts/statedb";
import { type EtcdInstance, etcdAvailable, startEtcd } from "@nsm-ts/testing/etcd";
import { expect } from "chai";
import {
  createEtcdResourceStore,
  createMemoryResourceStore,
  type ResourceStore,
  type StoredRecord,
  type StoreOp,
  type StoreWatchEvent,
} from "./index.js";

const net = (id: string, name = ""): StoreOp => ({
  type: "create",
  kind: "network",
  id,
  value: create(NetworkSchema, { id, name }),
  refs: [],
});
const rename = (id: string, name: string): StoreOp => ({
  type: "update",
  kind: "network",
  id,
  value: create(NetworkSchema, { id, name }),
  refs: [],
});
const nameOf = (r: StoredRecord | undefined): string | undefined => (r?.value as Network | undefined)?.name;
const del = (id: string): StoreOp => ({ type: "delete", kind: "network", id });

/** A watch read step by step: `next()` gives one event, or the error that ended it. */
class Reader {
  private readonly it: AsyncIterator<StoreWatchEvent>;
  constructor(
    iterable: AsyncIterable<StoreWatchEvent>,
    readonly ctl: AbortController,
  ) {
    this.it = iterable[Symbol.asyncIterator]();
  }
  async next(): Promise<StoreWatchEvent> {
    const r = await this.it.next();
    if (r.done) throw new Error("watch ended");
    return r.value;
  }
  /** Reads events until `pred` holds for one (returned with everything read before it). */
  async until(pred: (e: StoreWatchEvent) => boolean): Promise<StoreWatchEvent[]> {
    const seen: StoreWatchEvent[] = [];
    for (;;) {
      const e = await this.next();
      seen.push(e);
      if (pred(e)) return seen;
    }
  }
  async close(): Promise<void> {
    this.ctl.abort();
    await this.it.return?.();
  }
}

/** A short description of an event: `put n1 a`, `delete n1`, `synced`. */
function show(e: StoreWatchEvent): string {
  if (e.type === "synced") return "synced";
  if (e.type === "put") return `put ${e.record.id} ${nameOf(e.record)}`;
  return `delete ${e.id}`;
}

for (const kind of ["memory", "etcd"] as const) {
  describe(`resources: store watch (${kind})`, function () {
    this.timeout(30_000);
    let etcd: EtcdInstance | undefined;
    let store: ResourceStore;
    const readers: Reader[] = [];
    const watch = (fromRevision?: string, bufferSize?: number): Reader => {
      const ctl = new AbortController();
      const r = new Reader(store.watch("network", { fromRevision, signal: ctl.signal, bufferSize }), ctl);
      readers.push(r);
      return r;
    };

    before(async function () {
      if (kind === "memory") return;
      const check = etcdAvailable();
      if (!check.available) {
        console.warn(`    skipping the etcd watch cases: ${check.reason}`);
        this.skip();
      }
      etcd = await startEtcd();
    });
    after(async () => etcd?.stop());
    beforeEach(() => {
      store =
        kind === "memory"
          ? createMemoryResourceStore({ db: createDb({ graveyardSize: 2 }) })
          : createEtcdResourceStore({ endpoints: etcd?.endpoints ?? [], prefix: `/w/${Math.random().toString(36).slice(2)}/` });
    });
    afterEach(async () => {
      for (const r of readers.splice(0)) await r.close();
      await store.close();
    });

    it("from 0: the current records in id order, synced, then every change of the kind with its revision", async () => {
      await store.commit([net("n2", "b"), net("n1", "a")]);
      await store.commit([{ type: "create", kind: "securitygroup", id: "s", value: create(SecurityGroupSchema, { id: "s" }), refs: [] }]); // another kind: never seen
      const w = watch();
      expect((await w.until((e) => e.type === "synced")).map(show)).to.deep.equal(["put n1 a", "put n2 b", "synced"]);
      const [rev] = await store.commit([rename("n1", "a2")]);
      await store.commit([del("n2")]);
      const live = [await w.next(), await w.next()];
      expect(live.map(show)).to.deep.equal(["put n1 a2", "delete n2"]);
      expect(live[0]?.revision).to.equal(rev);
      const gone = live[1];
      // The delete carries the record's last state.
      expect(gone?.type === "delete" && nameOf(gone.record)).to.equal("b");
    });

    it("resumes from a revision: exactly the changes after it, deletes included, no synced", async () => {
      const [r1] = await store.commit([net("n1", "a")]);
      await store.commit([net("n2", "b")]);
      await store.commit([del("n1")]);
      await store.commit([rename("n2", "b2")]);
      const w = watch(r1);
      const got = await w.until((e) => e.type === "put" && e.record.id === "n2" && nameOf(e.record) === "b2");
      // The memory store coalesces an object's updates into its latest state; etcd replays each one.
      const want = kind === "memory" ? ["delete n1", "put n2 b2"] : ["put n2 b", "delete n1", "put n2 b2"];
      expect(got.map(show)).to.deep.equal(want);
      // And it goes on live.
      await store.commit([net("n3", "c")]);
      expect(show(await w.next())).to.equal("put n3 c");
    });

    it("a slow watcher is ended with ResourceExhausted after the events it had buffered; a fast one is not", async () => {
      const slow = watch(undefined, 4);
      expect(show(await slow.next())).to.equal("synced");
      const fast = watch(undefined, 1000);
      expect(show(await fast.next())).to.equal("synced");
      for (let i = 0; i < 10; i++) await store.commit([net(`n${i}`)]);
      // The fast watcher saw all ten: the slow one's pump has passed them too.
      expect(await fast.until((e) => e.type === "put" && e.record.id === "n9")).to.have.length(10);
      const got: string[] = [];
      let err: unknown;
      try {
        for (;;) got.push(show(await slow.next()));
      } catch (e) {
        err = e;
      }
      // The four buffered, plus the one handed straight to a read already waiting when the watch started (etcd).
      expect(got).to.deep.equal(["put n0 ", "put n1 ", "put n2 ", "put n3 ", "put n4 "].slice(0, got.length));
      expect(got.length).to.be.within(4, 5);
      expect(err).to.be.instanceOf(StatusError);
      expect((err as StatusError).code).to.equal(Code.ResourceExhausted);
      expect((err as StatusError).message).to.match(/fell 4 events behind/);
    });

    it("a revision whose changes are gone fails with OutOfRange; a malformed one with InvalidArgument", async () => {
      const [r1] = await store.commit([net("n1")]);
      for (let i = 0; i < 4; i++) await store.commit([del(i % 2 === 0 ? "n1" : "n2")].concat(i % 2 === 0 ? [net("n2")] : [net("n1")]));
      if (kind === "etcd") {
        const client = newEtcdClient({ hosts: etcd?.endpoints ?? [] });
        try {
          const head = await client.get("x").exec();
          await client.kv.compact({ revision: head.header.revision, physical: true });
        } finally {
          client.close();
        }
      }
      const old = watch(r1);
      const err = await old.next().then(
        () => expect.fail("expected OutOfRange"),
        (e: unknown) => e,
      );
      expect((err as StatusError).code).to.equal(Code.OutOfRange);
      const bad = watch("x1");
      const err2 = await bad.next().then(
        () => expect.fail("expected InvalidArgument"),
        (e: unknown) => e,
      );
      expect((err2 as StatusError).code).to.equal(Code.InvalidArgument);
    });

    if (kind === "etcd")
      it("etcd plumbing: a watch from a compacted revision reports it, and closing leaves nothing waiting", async () => {
        const client = newEtcdClient({ hosts: etcd?.endpoints ?? [] });
        const base = new EtcdStoreBase({ client, prefix: "/cw/", describe: (op) => `test ${op}`, closedMessage: "closed" });
        try {
          await client.put("/cw/a").value("1");
          await client.put("/cw/a").value("2");
          const head = await client.get("x").exec();
          await client.kv.compact({ revision: head.header.revision, physical: true });
          // etcd creates the watch and cancels it at once: the error reaches the handlers (or the watch call, when
          // it comes first), and stopping a watch etcd already cancelled does not wait for an answer.
          let reported: (err: Error) => void = () => undefined;
          const onError = new Promise<Error>((r) => (reported = r));
          const started = await base
            .watch("/cw/", { put: () => undefined, delete: () => undefined, error: (e) => reported(e) }, { startRevision: "1" })
            .catch((e: unknown) => e as Error);
          const err = started instanceof Error ? started : await onError;
          // etcd3 reports the cancel without etcd's compact revision, which is why the store reads at the start
          // revision first to answer OutOfRange.
          expect(err.message).to.match(/^Watcher canceled/);
        } finally {
          await base.close();
          client.close();
        }
      });

    it("closing the store ends open watches with Unavailable", async () => {
      const w = watch();
      expect(show(await w.next())).to.equal("synced");
      const pending = w.next();
      await store.close();
      const err = await pending.then(
        () => expect.fail("expected Unavailable"),
        (e: unknown) => e,
      );
      expect((err as StatusError).code).to.equal(Code.Unavailable);
    });
  });
}
