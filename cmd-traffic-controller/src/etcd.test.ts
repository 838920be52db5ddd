import { create } from "@bufbuild/protobuf";
import { TrafficGroupSchema } from "@nsm-ts/api/intents";
import { type EtcdInstance, etcdAvailable, startEtcd } from "@nsm-ts/testing/etcd";
import { expect } from "chai";
import { inboundA, memoryObjects, outboundB, seedShop } from "./intents.fixture.js";
import { createEtcdKv, type Kv } from "./kv/index.js";
import type { OutboxEntry } from "./model.js";
import type { IntentObjects } from "./objects.js";

describe("traffic-controller: etcd store (two replicas on one etcd)", function () {
  this.timeout(60_000);
  let etcd: EtcdInstance | undefined;
  let kvA: Kv;
  let kvB: Kv;
  let a: IntentObjects;
  let b: IntentObjects;

  before(async function () {
    const check = etcdAvailable();
    if (!check.available) {
      console.warn(`    skipping the traffic-controller etcd cases: ${check.reason}`);
      this.skip();
    }
    etcd = await startEtcd({ tmpDir: "/dev/shm" });
  });
  after(async () => {
    await etcd?.stop();
  });
  beforeEach(async function () {
    if (etcd === undefined) this.skip();
    const prefix = `/t/${Math.random().toString(36).slice(2)}/`;
    kvA = createEtcdKv({ endpoints: etcd.endpoints, prefix });
    kvB = createEtcdKv({ endpoints: etcd.endpoints, prefix });
    a = memoryObjects(kvA);
    b = memoryObjects(kvB);
  });
  afterEach(async () => {
    await kvA?.close();
    await kvB?.close();
  });

  it("concurrent writes through both replicas serialise: contiguous outbox sequences, none lost or doubled", async () => {
    await seedShop(a, "/tmp/a.git", "/tmp/b.git");
    // 12 updates of the outbound intent, 6 through each replica, all at once.
    const writes = Array.from({ length: 12 }, (_, i) => (i % 2 === 0 ? a : b).updateIntent(outboundB(`${i + 10}s`)));
    const results = await Promise.allSettled(writes);
    expect(results.filter((r) => r.status === "rejected").map((r) => String((r as PromiseRejectedResult).reason))).to.deep.equal([]);
    const { entries } = await kvA.list("ob/edge-b/git/");
    const seqs = entries.map((e) => Number((JSON.parse(e.value) as OutboxEntry).seq));
    // Entry 1 is the intent's creation, then one per update (each sets another timeout).
    expect(seqs).to.deep.equal(Array.from({ length: 13 }, (_, i) => i + 1));
    const desired = JSON.parse((await kvB.get("st/desired/edge-b/git"))?.value ?? "{}") as { seq: string };
    expect(desired.seq).to.equal(String(seqs.length));
  });

  it("lists every key of a large prefix in key order at one revision", async () => {
    const keys = Array.from({ length: 1300 }, (_, i) => `many/${((i * 2654435761) >>> 0).toString(36)}-${i}`);
    for (let i = 0; i < keys.length; i += 100) {
      await kvA.txn({ compares: [], deletes: [], puts: keys.slice(i, i + 100).map((key) => ({ key, value: `v-${key}` })) });
    }
    await kvA.txn({ compares: [], deletes: [], puts: [{ key: "manz", value: "outside" }] });
    const { entries, revision } = await kvB.list("many/");
    expect(entries.map((e) => e.key)).to.deep.equal([...keys].sort());
    expect(entries.every((e) => e.value === `v-${e.key}` && BigInt(e.modRevision) <= BigInt(revision))).to.equal(true);
    expect((await kvB.list("nothing/")).entries).to.deep.equal([]);
  });

  it("a write that fails validation on one replica leaves nothing behind; both replicas read the same objects", async () => {
    await a.createGroup(create(TrafficGroupSchema, { name: "shop" }));
    const before = await kvB.list("");
    const err = await b.createIntent(inboundA()).then(
      () => undefined,
      (e: unknown) => e as Error,
    );
    expect(err?.message).to.contain("inbound.cluster: unknown cluster");
    expect((await kvB.list("")).entries).to.deep.equal(before.entries);
    expect((await b.list("group")).map((g) => g.name)).to.deep.equal(["shop"]);
  });

  it("a delivery lock is held by one replica at a time and freed on release", async () => {
    const l1 = await kvA.tryLock("deliver/edge-b/git", 2_000);
    expect(l1).to.not.equal(undefined);
    expect(await kvB.tryLock("deliver/edge-b/git", 2_000)).to.equal(undefined);
    await l1?.release();
    expect(l1?.lost.aborted).to.equal(true);
    const l2 = await kvB.tryLock("deliver/edge-b/git", 2_000);
    expect(l2).to.not.equal(undefined);
    // The old holder's compare no longer holds: it could not record a delivery.
    const stale = await kvA.txn({
      compares: [l1?.compare ?? { key: "", modRevision: "0" }],
      puts: [{ key: "x", value: "1" }],
      deletes: [],
    });
    expect(stale.succeeded).to.equal(false);
    await l2?.release();
  });
});
