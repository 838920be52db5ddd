/**
 * Alcor's four concurrency cases for virtual IPs, DNS records and nodes, on the memory store and on etcd with two
 * replicas: decoupled (different resources: all succeed), loosely related (one shared pool: all succeed, nothing
 * handed out twice), directly coupled (a record and what it references change at once: one consistent outcome)
 * and the same resource (one writer wins, the others get Aborted or AlreadyExists, nothing leaks).
 */
import { create } from "@bufbuild/protobuf";
import {
  DnsRecordSchema,
  type IpAddress,
  type Node,
  NodeSchema,
  NodeState,
  PortSchema,
  ResourceRefSchema,
  type VirtualIp,
  VirtualIpSchema,
} from "@nsm-ts/api/resources";
import { Code, StatusError } from "@nsm-ts/base/status";
import { type EtcdInstance, etcdAvailable, startEtcd } from "@nsm-ts/testing/etcd";
import { list, network, subnet } from "@nsm-ts/testing/resources";
import { expect } from "chai";
import { createEtcdResourceStore, createResourceManagers, type ResourceManagers, type ResourceStore } from "./index.js";

const ref = (id: string) => create(ResourceRefSchema, { id });
const heartbeat = (id: string) => ({ id, $typeName: "nsmts.resources.v1.NodeHeartbeat" as const });

const codeName = new Map<number, string>(Object.entries(Code).map(([k, v]) => [v as number, k]));

/** Outcomes of settled calls: "ok" or the status code's name. */
function outcomes(rs: PromiseSettledResult<unknown>[]): string[] {
  return rs.map((r) =>
    r.status === "fulfilled" ? "ok" : r.reason instanceof StatusError ? (codeName.get(r.reason.code) ?? "?") : String(r.reason),
  );
}

for (const kind of ["memory", "etcd"] as const) {
  describe(`resources: Alcor's concurrency cases for virtual IPs, DNS records and nodes (${kind})`, function () {
    this.timeout(60_000);
    let etcd: EtcdInstance | undefined;
    const stores: ResourceStore[] = [];
    /** Two managers on one store (etcd: two replicas with a store each). */
    let a: ResourceManagers;
    let b: ResourceManagers;

    before(async function () {
      if (kind === "memory") return;
      const check = etcdAvailable();
      if (!check.available) {
        console.warn(`    skipping the etcd concurrency cases: ${check.reason}`);
        this.skip();
      }
      etcd = await startEtcd();
    });
    after(async () => etcd?.stop());
    beforeEach(async () => {
      if (kind === "memory") {
        a = createResourceManagers();
        b = a;
        stores.push(a.store);
      } else {
        const prefix = `/c/${Math.random().toString(36).slice(2)}/`;
        const sa = createEtcdResourceStore({ endpoints: etcd?.endpoints ?? [], prefix });
        const sb = createEtcdResourceStore({ endpoints: etcd?.endpoints ?? [], prefix });
        stores.push(sa, sb);
        a = createResourceManagers({ store: sa });
        b = createResourceManagers({ store: sb });
      }
      await a.createNetwork(network("n1", "198.51.100.0/24"));
      await a.createSubnet(subnet("private", "n1", "198.51.100.0/26"));
      await a.createSubnet(subnet("public1", "n1", "198.51.100.128/27"));
      await a.createSubnet(subnet("public2", "n1", "198.51.100.160/27"));
      for (const p of ["p1", "p2"]) await a.createPort(create(PortSchema, { id: p, networkId: "n1", fixedIps: [{ subnetId: "private" }] }));
    });
    afterEach(async () => {
      for (const s of stores.splice(0)) await s.close();
    });
    const either = (i: number) => (i % 2 === 0 ? a : b);

    it("decoupled: virtual IPs in different subnets, records of different names, heartbeats of different nodes all succeed", async () => {
      for (const n of ["node-1", "node-2", "node-3", "node-4"]) await a.nodes.create(create(NodeSchema, { id: n }));
      const rs = await Promise.allSettled([
        a.virtualIps.create(create(VirtualIpSchema, { id: "v1", subnetId: "public1", portIds: ["p1"] })),
        b.virtualIps.create(create(VirtualIpSchema, { id: "v2", subnetId: "public2", portIds: ["p2"] })),
        a.dnsRecords.create(create(DnsRecordSchema, { name: "one.example", portId: "p1" })),
        b.dnsRecords.create(create(DnsRecordSchema, { name: "two.example", portId: "p2" })),
        ...["node-1", "node-2", "node-3", "node-4"].map((n, i) => either(i).nodes.heartbeat(heartbeat(n))),
      ]);
      expect(outcomes(rs)).to.deep.equal(Array(8).fill("ok"));
      const nodes = (await a.list<Node>("node", list())).items;
      expect(nodes.map((n) => n.state)).to.deep.equal(Array(4).fill(NodeState.IN_SERVICE));
    });

    it("loosely related: 24 virtual IPs from one pool at once get 24 distinct addresses, none lost", async () => {
      const rs = await Promise.allSettled(
        Array.from({ length: 24 }, (_, i) => either(i).virtualIps.create(create(VirtualIpSchema, { id: `v${i}`, subnetId: "public1" }))),
      );
      expect(outcomes(rs)).to.deep.equal(Array(24).fill("ok"));
      const vips = (await a.list<VirtualIp>("vip", list())).items.map((v) => v.address);
      expect(new Set(vips).size).to.equal(24);
      expect((await a.list("ip", list({ subnetId: "public1" }))).items).to.have.length(24);
    });

    it("directly coupled: binding a virtual IP or naming a port while the port is deleted leaves one consistent outcome", async () => {
      for (let round = 0; round < 4; round++) {
        const port = `q${round}`;
        await a.createPort(create(PortSchema, { id: port, networkId: "n1", fixedIps: [{ subnetId: "private" }] }));
        const [bind, name, del] = await Promise.allSettled([
          a.virtualIps.create(create(VirtualIpSchema, { id: `v${round}`, subnetId: "public1", portIds: [port] })),
          b.dnsRecords.create(create(DnsRecordSchema, { id: `d${round}`, name: `${port}.example`, portId: port })),
          b.delete("port", [ref(port)]),
        ]);
        const portGone = (await a.store.get("port", port)) === undefined;
        if (portGone) {
          // The delete won: neither reference exists and the virtual IP's address went back.
          expect(outcomes([del])).to.deep.equal(["ok"]);
          expect(outcomes([bind, name]).every((o) => o === "NotFound" || o === "FailedPrecondition")).to.equal(true);
          expect(await a.store.get("vip", `v${round}`)).to.equal(undefined);
          expect(await a.store.get("dns", `d${round}`)).to.equal(undefined);
        } else {
          expect(outcomes([del])).to.deep.equal(["FailedPrecondition"]);
          expect(outcomes([bind, name])).to.include("ok");
        }
        const ips = (await a.list<IpAddress>("ip", list({ subnetId: "public1" }))).items;
        const vips = (await a.list("vip", list())).items;
        expect(ips.length, "no address without its virtual IP").to.equal(vips.length);
      }
    });

    it("same resource: one update per revision wins, one create per id wins, and no address leaks", async () => {
      const node = await a.nodes.create(create(NodeSchema, { id: "node-1" }));
      const ups = await Promise.allSettled(
        Array.from({ length: 6 }, (_, i) =>
          either(i).nodes.update(create(NodeSchema, { id: "node-1", name: `n${i}`, revision: node.revision })),
        ),
      );
      expect(outcomes(ups).filter((o) => o === "ok")).to.have.length(1);
      expect(outcomes(ups).filter((o) => o !== "ok")).to.deep.equal(Array(5).fill("Aborted"));
      const creates = await Promise.allSettled(
        Array.from({ length: 6 }, (_, i) => either(i).virtualIps.create(create(VirtualIpSchema, { id: "shared", subnetId: "public1" }))),
      );
      expect(outcomes(creates).filter((o) => o === "ok")).to.have.length(1);
      expect(outcomes(creates).filter((o) => o !== "ok")).to.deep.equal(Array(5).fill("AlreadyExists"));
      expect((await a.list("ip", list({ subnetId: "public1" }))).items, "the losers' addresses went back").to.have.length(1);
      const recs = await Promise.allSettled(
        Array.from({ length: 4 }, (_, i) =>
          either(i).dnsRecords.create(create(DnsRecordSchema, { name: "same.example", addresses: [`203.0.113.${i + 1}`] })),
        ),
      );
      expect(outcomes(recs).filter((o) => o === "ok")).to.have.length(1);
      expect(outcomes(recs).filter((o) => o !== "ok")).to.deep.equal(Array(3).fill("AlreadyExists"));
    });
  });
}
