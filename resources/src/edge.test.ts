import { create } from "@bufbuild/protobuf";
import {
  DnsRecordSchema,
  IpAddressRefSchema,
  type Node,
  NodeSchema,
  NodeState,
  PortSchema,
  ResourceRefSchema,
  VirtualIpSchema,
} from "@nsm-ts/api/resources";
import { MockClock } from "@nsm-ts/base/clock";
import { Code } from "@nsm-ts/base/status";
import { list, network, statusOf, subnet } from "@nsm-ts/testing/resources";
import { expect } from "chai";
import { createResourceManagers, followDnsRecords, type ResourceManagers, type StoreWatchEvent } from "./index.js";

const ref = (id: string) => create(ResourceRefSchema, { id });

/** A network with a private subnet (ports) and a public one (virtual IPs). */
async function setup(m: ResourceManagers): Promise<void> {
  await m.createNetwork(network("n1", "198.51.100.0/24"));
  await m.createSubnet(subnet("private", "n1", "198.51.100.0/26"));
  await m.createSubnet(subnet("public", "n1", "198.51.100.128/28"));
  await m.createPort(create(PortSchema, { id: "p1", networkId: "n1", fixedIps: [{ subnetId: "private" }] }));
  await m.createPort(create(PortSchema, { id: "p2", networkId: "n1", fixedIps: [{ subnetId: "private" }] }));
}

describe("resources: virtual IPs", () => {
  it("allocates the address from its subnet, binds ports, rebinds, and releases the address with it", async () => {
    const m = createResourceManagers();
    await setup(m);
    const vip = await m.virtualIps.create(create(VirtualIpSchema, { id: "v1", subnetId: "public", portIds: ["p1"] }));
    expect(vip.address).to.equal("198.51.100.130");
    const ip = await m.getIpAddress(create(IpAddressRefSchema, { subnetId: "public", address: vip.address }));
    expect(ip.owner).to.equal("vip:v1");
    // A bound port cannot go; rebinding frees it.
    let err = await statusOf(m.delete("port", [ref("p1")]));
    expect([err.code, err.message]).to.deep.equal([Code.FailedPrecondition, 'resources: id: port "p1" is still referenced by vip "v1"']);
    const moved = await m.virtualIps.update(create(VirtualIpSchema, { id: "v1", portIds: ["p2"] }));
    expect(moved.portIds).to.deep.equal(["p2"]);
    await m.delete("port", [ref("p1")]);
    // The address cannot change in place; unknown ports are NotFound naming the field.
    err = await statusOf(m.virtualIps.update(create(VirtualIpSchema, { id: "v1", address: "198.51.100.140" })));
    expect(err.code).to.equal(Code.InvalidArgument);
    err = await statusOf(m.virtualIps.create(create(VirtualIpSchema, { subnetId: "public", portIds: ["nope"] })));
    expect([err.code, err.message]).to.deep.equal([Code.NotFound, 'resources: port_ids[0]: port "nope" not found']);
    await m.delete("vip", [ref("v1")]);
    expect((await m.list("ip", list({ subnetId: "public" }))).items).to.deep.equal([]);
  });
});

describe("resources: DNS records", () => {
  it("a record of a port answers with the port's addresses; names are canonical; the port stays while named", async () => {
    const m = createResourceManagers();
    await setup(m);
    const rec = await m.dnsRecords.create(create(DnsRecordSchema, { name: "Web.Tenant1.Example", portId: "p1" }));
    expect(rec).to.include({ id: "web.tenant1.example.", name: "web.tenant1.example.", ttlSeconds: 60 });
    expect(rec.addresses).to.deep.equal(["198.51.100.2"]);
    expect((await statusOf(m.delete("port", [ref("p1")]))).code).to.equal(Code.FailedPrecondition);
    let err = await statusOf(m.dnsRecords.create(create(DnsRecordSchema, { name: "bad..name", addresses: ["198.51.100.9"] })));
    expect(err.code).to.equal(Code.InvalidArgument);
    expect(err.message).to.match(/^resources: name: "bad\.\.name" is not a DNS name/);
    err = await statusOf(m.dnsRecords.create(create(DnsRecordSchema, { name: "x.example", addresses: ["198.51.100.300"] })));
    expect(err.message).to.match(/addresses\[0\]/);
  });

  it("followDnsRecords keeps a DNS server's records equal to the store's, names shared by records merged", async () => {
    const m = createResourceManagers();
    await setup(m);
    const sink = new Map<string, readonly string[]>();
    let changed: () => void = () => undefined;
    const next = () => new Promise<void>((r) => (changed = r));
    const until = async (pred: () => boolean) => {
      while (!pred()) await next();
    };
    const ctl = new AbortController();
    const feeding = followDnsRecords(
      m.store,
      {
        set: (n, ips) => {
          sink.set(n, ips);
          changed();
        },
        delete: (n) => {
          sink.delete(n);
          changed();
        },
      },
      { signal: ctl.signal },
    );
    try {
      await m.dnsRecords.create(create(DnsRecordSchema, { id: "a", name: "svc.example", portId: "p1" }));
      await until(() => sink.has("svc.example."));
      await m.dnsRecords.create(create(DnsRecordSchema, { id: "b", name: "svc.example", addresses: ["203.0.113.5"] }));
      await until(() => sink.get("svc.example.")?.length === 2);
      expect(sink.get("svc.example.")).to.have.members(["198.51.100.2", "203.0.113.5"]);
      await m.delete("dns", [ref("a")]);
      await until(() => sink.get("svc.example.")?.length === 1);
      await m.delete("dns", [ref("b")]);
      await until(() => !sink.has("svc.example."));
    } finally {
      ctl.abort();
      await feeding;
    }
  });
});

describe("resources: nodes and their health (mock clock)", () => {
  it("in service while heartbeats arrive, out after the timeout without one, back on the next; drained stays out", async () => {
    const clock = new MockClock();
    const m = createResourceManagers({ clock, heartbeatTimeoutMs: 30_000 });
    const ctl = new AbortController();
    const created = await m.nodes.create(
      create(NodeSchema, { id: "node-a", tunnelIp: "169.254.10.1", labels: { "topology.kubernetes.io/zone": "zone-a" } }),
    );
    expect([created.state, created.reason]).to.deep.equal([NodeState.OUT_OF_SERVICE, "no heartbeat yet"]);
    const hb = await m.nodes.heartbeat({ id: "node-a", $typeName: "nsmts.resources.v1.NodeHeartbeat" });
    expect(hb.state).to.equal(NodeState.IN_SERVICE);
    // Heartbeats within a third of the timeout change nothing: no write, no watch event.
    await clock.advance(5_000);
    expect((await m.nodes.heartbeat({ id: "node-a", $typeName: "nsmts.resources.v1.NodeHeartbeat" })).revision).to.equal(hb.revision);
    await clock.advance(5_000);
    const hb2 = await m.nodes.heartbeat({ id: "node-a", $typeName: "nsmts.resources.v1.NodeHeartbeat" });
    expect(hb2.lastHeartbeatMs).to.equal(String(clock.now()));

    const events: StoreWatchEvent[] = [];
    const watch = m.store.watch("node", { fromRevision: hb2.revision, signal: ctl.signal })[Symbol.asyncIterator]();
    m.nodes.startHealth(ctl.signal);
    try {
      // Sweeps every 10 s; the one 30 s after the last stored heartbeat takes the node out.
      for (let i = 0; i < 4; i++) {
        await clock.untilPending();
        await clock.set(clock.nextAt() ?? 0);
      }
      const ev = await watch.next();
      events.push(ev.value as StoreWatchEvent);
      const out = (ev.value as { record: { value: Node } }).record.value;
      expect(out.state).to.equal(NodeState.OUT_OF_SERVICE);
      expect(out.reason).to.equal(`no heartbeat since ${new Date(Number(hb2.lastHeartbeatMs)).toISOString()}`);
      expect(clock.now() - Number(hb2.lastHeartbeatMs)).to.be.within(30_001, 40_000);
      expect((await m.nodes.heartbeat({ id: "node-a", $typeName: "nsmts.resources.v1.NodeHeartbeat" })).state).to.equal(
        NodeState.IN_SERVICE,
      );
      const drained = await m.nodes.update(create(NodeSchema, { id: "node-a", drained: true }));
      expect([drained.state, drained.reason]).to.deep.equal([NodeState.OUT_OF_SERVICE, "drained"]);
      expect((await m.nodes.heartbeat({ id: "node-a", $typeName: "nsmts.resources.v1.NodeHeartbeat" })).state).to.equal(
        NodeState.OUT_OF_SERVICE,
      );
    } finally {
      ctl.abort();
      await watch.return?.();
    }
    expect(clock.pending()).to.equal(0);
    const err = await statusOf(m.nodes.create(create(NodeSchema, { tunnelIp: "not-an-ip" })));
    expect(err.code).to.equal(Code.InvalidArgument);
    expect(err.message).to.match(/tunnel_ip/);
  });
});
