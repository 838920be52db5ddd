import { create } from "@bufbuild/protobuf";
import {
  AllocateIpAddressRequestSchema,
  type IpAddress,
  IpAddressRefSchema,
  ListRequestSchema,
  type Network,
  NetworkSchema,
  PortSchema,
  ResourceRefSchema,
  SubnetSchema,
} from "@nsm-ts/api/resources";
import { Code, StatusError } from "@nsm-ts/base/status";
import { type EtcdInstance, etcdAvailable, startEtcd } from "@nsm-ts/testing/etcd";
import { expect } from "chai";
import { createEtcdResourceStore, createResourceManagers, type ResourceManagers, type ResourceStore } from "./index.js";

async function statusOf(p: Promise<unknown>): Promise<StatusError> {
  try {
    await p;
  } catch (err) {
    if (err instanceof StatusError) return err;
    throw err;
  }
  expect.fail("expected a StatusError");
}

const alloc = (subnetId: string, address = "") => create(AllocateIpAddressRequestSchema, { subnetId, address });

describe("resources: etcd store (two replicas on one etcd)", function () {
  this.timeout(60_000);
  let etcd: EtcdInstance | undefined;
  let a: ResourceManagers;
  let b: ResourceManagers;

  before(async function () {
    const check = etcdAvailable();
    if (!check.available) {
      console.warn(`    skipping the etcd resource store cases: ${check.reason}`);
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
    a = createResourceManagers({ store: createEtcdResourceStore({ endpoints: etcd.endpoints, prefix }) });
    b = createResourceManagers({ store: createEtcdResourceStore({ endpoints: etcd.endpoints, prefix }) });
    await a.createNetwork(create(NetworkSchema, { id: "n1", cidr: "198.51.100.0/22" }));
  });
  afterEach(async () => {
    await a?.store.close();
    await b?.store.close();
  });

  it("concurrent allocations from both replicas never duplicate an address", async () => {
    await a.createSubnet(create(SubnetSchema, { id: "s1", networkId: "n1", cidr: "198.51.100.0/24" }));
    const both = await Promise.all([
      ...Array.from({ length: 100 }, () => a.allocateIpAddress(alloc("s1"))),
      ...Array.from({ length: 100 }, () => b.allocateIpAddress(alloc("s1"))),
    ]);
    const addrs = new Set(both.map((ip) => ip.address));
    expect(addrs.size).to.equal(200);
    const stored = await a.list<IpAddress>("ip", create(ListRequestSchema, { subnetId: "s1", pageSize: 1000 }));
    expect(stored.items.length).to.equal(200);
  });

  it("racing replicas fill a subnet exactly, then both answer ResourceExhausted; a release on one is seen by the other", async () => {
    await a.createSubnet(create(SubnetSchema, { id: "s1", networkId: "n1", cidr: "198.51.100.0/26" }));
    const results = await Promise.allSettled([
      ...Array.from({ length: 40 }, () => a.allocateIpAddress(alloc("s1"))),
      ...Array.from({ length: 40 }, () => b.allocateIpAddress(alloc("s1"))),
    ]);
    const ok = results.filter((r): r is PromiseFulfilledResult<IpAddress> => r.status === "fulfilled").map((r) => r.value.address);
    const failed = results.filter((r): r is PromiseRejectedResult => r.status === "rejected").map((r) => r.reason as StatusError);
    expect(ok.length).to.equal(61); // 64 - network - broadcast - gateway
    expect(new Set(ok).size).to.equal(61);
    expect(failed.length).to.equal(19);
    for (const f of failed) expect(f.code).to.equal(Code.ResourceExhausted);
    const victim = ok[0] ?? "";
    await a.releaseIpAddress(create(IpAddressRefSchema, { subnetId: "s1", address: victim }));
    // b's bitmap still counts it taken; exhaustion makes it resync from etcd and find it.
    expect((await b.allocateIpAddress(alloc("s1"))).address).to.equal(victim);
  });

  it("stale revisions, deletes with children and port create/delete hold across replicas", async () => {
    await a.createSubnet(create(SubnetSchema, { id: "s1", networkId: "n1", cidr: "198.51.100.0/24" }));
    const n = await b.get<Network>("network", create(ResourceRefSchema, { id: "n1" }));
    await a.updateNetwork({ ...n, name: "x" });
    const stale = await statusOf(b.updateNetwork({ ...n, name: "y" }));
    expect(stale.code).to.equal(Code.Aborted);
    expect(stale.message).to.match(/revision: network "n1"/);
    const child = await statusOf(b.delete("network", [create(ResourceRefSchema, { id: "n1" })]));
    expect(child.code).to.equal(Code.FailedPrecondition);
    expect(child.message).to.match(/id: network "n1" is still referenced by subnet "s1"/);

    const port = await a.createPort(create(PortSchema, { id: "p1", networkId: "n1", owner: "nse-1" }));
    // On a shared store the first-free scan starts at a random point (replicas would collide at the lowest one).
    const portIp = port.fixedIps[0]?.ipAddress ?? "";
    expect(portIp).to.match(/^198\.51\.100\.\d+$/);
    expect(["198.51.100.0", "198.51.100.1", "198.51.100.255"]).to.not.include(portIp);
    // A port with a taken fixed IP fails on b and leaves nothing behind.
    const before = (await a.list("ip", create(ListRequestSchema, {}))).items.length;
    const dup = await statusOf(
      b.createPort(
        create(PortSchema, { id: "p2", networkId: "n1", fixedIps: [{ subnetId: "s1" }, { subnetId: "s1", ipAddress: portIp }] }),
      ),
    );
    expect(dup.code).to.equal(Code.AlreadyExists);
    expect((await a.list("ip", create(ListRequestSchema, {}))).items.length).to.equal(before);
    expect((await a.list("mac", create(ListRequestSchema, {}))).items.length).to.equal(1);
    // Deleting the port removes it with its address and MAC in one transaction.
    await b.delete("port", [create(ResourceRefSchema, { id: "p1" })]);
    expect((await a.list("ip", create(ListRequestSchema, {}))).items).to.deep.equal([]);
    expect((await a.list("mac", create(ListRequestSchema, {}))).items).to.deep.equal([]);
    await b.delete("subnet", [create(ResourceRefSchema, { id: "s1" })]);
    await b.delete("network", [create(ResourceRefSchema, { id: "n1" })]);
  });

  it("the change feed tells a replica's bitmap of the other's allocations and releases (no conflicts)", async () => {
    if (etcd === undefined) return;
    // B's store with a tap on its feed, so the test waits for events instead of sleeping.
    const inner = createEtcdResourceStore({ endpoints: etcd.endpoints, prefix: "/feed/" });
    const seen: Array<{ id: string; deleted: boolean }> = [];
    const waiters: Array<() => void> = [];
    const tapped: ResourceStore = {
      exclusive: false,
      get: (k, id) => inner.get(k, id),
      list: (k, o) => inner.list(k, o),
      commit: (ops) => inner.commit(ops),
      close: () => inner.close(),
      watch: (k, o) => inner.watch(k, o),
      watchKind: (kind, onChange) =>
        inner.watchKind(kind, (id, deleted) => {
          onChange(id, deleted);
          if (kind === "ip") seen.push({ id, deleted });
          for (const w of waiters.splice(0)) w();
        }),
    };
    const until = async (pred: () => boolean): Promise<void> => {
      while (!pred()) await new Promise<void>((r) => waiters.push(r));
    };
    const a2 = createResourceManagers({ store: createEtcdResourceStore({ endpoints: etcd.endpoints, prefix: "/feed/" }) });
    const b2 = createResourceManagers({ store: tapped });
    try {
      await a2.createNetwork(create(NetworkSchema, { id: "n", cidr: "198.51.100.0/24" }));
      await a2.createSubnet(create(SubnetSchema, { id: "s", networkId: "n", cidr: "198.51.100.0/29" }));
      const first = await b2.allocateIpAddress(alloc("s")); // loads b2's bitmap and starts its feed
      await until(() => seen.some((e) => e.id === `s/${first.address}`));
      const others = await Promise.all(Array.from({ length: 4 }, () => a2.allocateIpAddress(alloc("s"))));
      await until(() => others.every((o) => seen.some((e) => e.id === `s/${o.address}` && !e.deleted)));
      const full = await statusOf(b2.allocateIpAddress(alloc("s")));
      expect(full.code).to.equal(Code.ResourceExhausted);
      expect(b2.conflicts).to.equal(0); // without the feed it would have tried a2's four addresses first
      const victim = others[2]?.address ?? "";
      await a2.releaseIpAddress(create(IpAddressRefSchema, { subnetId: "s", address: victim }));
      await until(() => seen.some((e) => e.id === `s/${victim}` && e.deleted));
      expect((await b2.allocateIpAddress(alloc("s"))).address).to.equal(victim);
      expect(b2.conflicts).to.equal(0);
    } finally {
      await a2.store.close();
      await b2.store.close();
    }
  });

  it("a watch from revision 0 lists every record in id order across many slices, then synced", async () => {
    const store = a.store;
    // 1,234 networks (ids spread so the key space is uneven) in commits of 50: more than two listing pages of 500.
    const ids = Array.from({ length: 1234 }, (_, i) => `net-${(i * 7919) % 100_003}`);
    for (let i = 0; i < ids.length; i += 50) {
      await store.commit(
        ids
          .slice(i, i + 50)
          .map((id) => ({ type: "create" as const, kind: "network" as const, id, value: create(NetworkSchema, { id }), refs: [] })),
      );
    }
    const ctl = new AbortController();
    const listed: string[] = [];
    for await (const ev of store.watch("network", { signal: ctl.signal })) {
      if (ev.type === "synced") break;
      if (ev.type === "put") listed.push(ev.record.id);
    }
    ctl.abort();
    // n1 is the network every case starts with.
    expect(listed).to.deep.equal([...ids, "n1"].sort());
  });

  it("bulk allocations beyond one transaction are all or none", async () => {
    await a.createSubnet(create(SubnetSchema, { id: "s1", networkId: "n1", cidr: "198.51.100.0/24" }));
    const got = await a.bulkAllocateIpAddresses({
      $typeName: "nsmts.resources.v1.BulkAllocateIpAddressesRequest",
      subnetId: "s1",
      count: 120,
      owner: "",
    });
    expect(new Set(got.map((g) => g.address)).size).to.equal(120);
    const err = await statusOf(
      b.bulkAllocateIpAddresses({ $typeName: "nsmts.resources.v1.BulkAllocateIpAddressesRequest", subnetId: "s1", count: 200, owner: "" }),
    );
    expect(err.code).to.equal(Code.ResourceExhausted);
    const stored = await a.list("ip", create(ListRequestSchema, { pageSize: 1000 }));
    expect(stored.items.length).to.equal(120);
  });
});
