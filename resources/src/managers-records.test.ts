/**
 * The resource managers on the memory store, records: revisions, references between records, ports with their
 * IP and MAC (and their rollback), listing and pagination, bulk operations, MACs, and the statedb table beneath.
 */
import { create } from "@bufbuild/protobuf";
import {
  type IpAddress,
  IpAddressRefSchema,
  IpState,
  type Network,
  PortSchema,
  ResourceRefSchema,
  SecurityGroupSchema,
} from "@nsm-ts/api/resources";
import { Code, StatusError } from "@nsm-ts/base/status";
import { allIps, alloc, list, network, statusOf, subnet } from "@nsm-ts/testing/resources";
import { expect } from "chai";
import { createMemoryResourceStore, createResourceManagers, type ResourceManagers, type ResourceStore } from "./index.js";

describe("resources: managers on the memory store", () => {
  let m: ResourceManagers;
  beforeEach(async () => {
    m = createResourceManagers();
    await m.createNetwork(network("n1", "198.51.100.0/22"));
  });
  afterEach(async () => {
    await m.store.close();
  });

  it("an update with a stale revision is Aborted naming revision; the current one succeeds", async () => {
    const n = await m.get<Network>("network", create(ResourceRefSchema, { id: "n1" }));
    const renamed = await m.updateNetwork({ ...n, name: "blue" });
    expect(BigInt(renamed.revision) > BigInt(n.revision)).to.equal(true);
    const err = await statusOf(m.updateNetwork({ ...n, name: "green" }));
    expect(err.code).to.equal(Code.Aborted);
    expect(err.message).to.match(/revision: network "n1" is at revision \d+, not \d+/);
    const again = await m.updateNetwork({ ...renamed, name: "green" });
    expect(again.name).to.equal("green");
    const stale = await statusOf(m.delete("network", [create(ResourceRefSchema, { id: "n1", revision: n.revision })]));
    expect(stale.code).to.equal(Code.Aborted);
  });

  it("deleting a parent with children is FailedPrecondition naming id and the child", async () => {
    await m.createSubnet(subnet("s1", "n1", "198.51.100.0/24"));
    const ip = await m.allocateIpAddress(alloc("s1"));
    let err = await statusOf(m.delete("network", [create(ResourceRefSchema, { id: "n1" })]));
    expect(err.code).to.equal(Code.FailedPrecondition);
    expect(err.message).to.match(/id: network "n1" is still referenced by subnet "s1"/);
    err = await statusOf(m.delete("subnet", [create(ResourceRefSchema, { id: "s1" })]));
    expect(err.code).to.equal(Code.FailedPrecondition);
    expect(err.message).to.match(/subnet "s1" is still referenced by ip "s1\/198\.51\.100\.2"/);
    await m.releaseIpAddress(create(IpAddressRefSchema, { subnetId: "s1", address: ip.address }));
    await m.delete("subnet", [create(ResourceRefSchema, { id: "s1" })]);
    await m.delete("network", [create(ResourceRefSchema, { id: "n1" })]);
    expect((await statusOf(m.get("network", create(ResourceRefSchema, { id: "n1" })))).code).to.equal(Code.NotFound);
  });

  it("a port binds an IP and a MAC; its address cannot be released alone; deleting it frees both", async () => {
    await m.createSubnet(subnet("s1", "n1", "198.51.100.0/24"));
    await m.createSecurityGroup(
      create(SecurityGroupSchema, { id: "web", rules: [{ direction: "ingress", protocol: "tcp", portRangeMin: 80, portRangeMax: 80 }] }),
    );
    const port = await m.createPort(create(PortSchema, { id: "p1", networkId: "n1", owner: "nse-1", securityGroupIds: ["web"] }));
    expect(port.fixedIps).to.have.length(1);
    expect(port.fixedIps[0]?.ipAddress).to.equal("198.51.100.2");
    expect(port.macAddress).to.match(/^fa:16:3e:[0-9a-f]{2}:[0-9a-f]{2}:[0-9a-f]{2}$/);
    const ip = await m.getIpAddress(create(IpAddressRefSchema, { subnetId: "s1", address: "198.51.100.2" }));
    expect(ip.owner).to.equal("p1");
    expect(ip.state).to.equal(IpState.ACTIVE);
    const held = await statusOf(m.releaseIpAddress(create(IpAddressRefSchema, { subnetId: "s1", address: "198.51.100.2" })));
    expect(held.code).to.equal(Code.FailedPrecondition);
    expect((await statusOf(m.delete("securitygroup", [create(ResourceRefSchema, { id: "web" })]))).code).to.equal(Code.FailedPrecondition);
    await m.delete("port", [create(ResourceRefSchema, { id: "p1", revision: port.revision })]);
    expect(await allIps(m, "s1")).to.deep.equal([]);
    expect((await m.list("mac", list())).items).to.deep.equal([]);
    // The freed address is the next one handed out.
    expect((await m.allocateIpAddress(alloc("s1"))).address).to.equal("198.51.100.2");
  });

  it("a failed port create leaves no IP or MAC behind (taken address, taken MAC, failing record commit)", async () => {
    await m.createSubnet(subnet("s1", "n1", "198.51.100.0/24"));
    await m.allocateIpAddress(alloc("s1", "198.51.100.9", "someone"));
    await m.allocateMacAddress({
      $typeName: "nsmts.resources.v1.AllocateMacAddressRequest",
      address: "fa:16:3e:00:00:01",
      oui: "",
      owner: "someone",
    });
    const before = async (): Promise<[number, number]> => [(await allIps(m, "s1")).length, (await m.list("mac", list())).items.length];
    expect(await before()).to.deep.equal([1, 1]);

    // Step 2 fails: the second fixed IP is taken, so the first one is released again.
    let err = await statusOf(
      m.createPort(
        create(PortSchema, { id: "p", networkId: "n1", fixedIps: [{ subnetId: "s1" }, { subnetId: "s1", ipAddress: "198.51.100.9" }] }),
      ),
    );
    expect(err.code).to.equal(Code.AlreadyExists);
    expect(err.message).to.match(/fixed_ips\[1\]\.ip_address: 198\.51\.100\.9 is already allocated/);
    expect(await before()).to.deep.equal([1, 1]);

    // The MAC step fails: both IPs go back.
    err = await statusOf(
      m.createPort(
        create(PortSchema, {
          id: "p",
          networkId: "n1",
          fixedIps: [{ subnetId: "s1" }, { subnetId: "s1" }],
          macAddress: "fa:16:3e:00:00:01",
        }),
      ),
    );
    expect(err.code).to.equal(Code.AlreadyExists);
    expect(err.message).to.match(/mac_address: fa:16:3e:00:00:01 is already allocated/);
    expect(await before()).to.deep.equal([1, 1]);

    // The record step fails (the store refuses port records): IP and MAC go back.
    const store = m.store;
    const failing: ResourceStore = {
      ...store,
      exclusive: store.exclusive,
      get: (k, id) => store.get(k, id),
      list: (k, o) => store.list(k, o),
      close: () => store.close(),
      watch: (k, o) => store.watch(k, o),
      commit: (ops) =>
        ops.some((o) => o.kind === "port") ? Promise.reject(new StatusError(Code.Unavailable, "injected")) : store.commit(ops),
    };
    const m2 = createResourceManagers({ store: failing });
    err = await statusOf(m2.createPort(create(PortSchema, { id: "p", networkId: "n1" })));
    expect(err.code).to.equal(Code.Unavailable);
    expect(await before()).to.deep.equal([1, 1]);
    // Addresses taken and rolled back are free again.
    expect((await m.allocateIpAddress(alloc("s1"))).address).to.equal("198.51.100.2");
  });

  it("lists with filters and pagination", async () => {
    await m.bulkCreateNetworks(Array.from({ length: 9 }, (_, i) => network(`m${i}`, "")));
    const ids: string[] = [];
    let pageToken = "";
    let pages = 0;
    do {
      const page = await m.list<Network>("network", list({ pageSize: 4, pageToken }));
      ids.push(...page.items.map((n) => n.id));
      pageToken = page.nextPageToken;
      pages++;
    } while (pageToken !== "");
    expect(ids).to.deep.equal(["m0", "m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8", "n1"]);
    expect(pages).to.equal(3);
    await m.createSubnet(subnet("s1", "n1", "198.51.100.0/24"));
    await m.bulkAllocateIpAddresses({
      $typeName: "nsmts.resources.v1.BulkAllocateIpAddressesRequest",
      subnetId: "s1",
      count: 5,
      owner: "x",
    });
    await m.allocateIpAddress(alloc("s1", "", "y"));
    expect((await m.list<IpAddress>("ip", list({ subnetId: "s1", owner: "x" }))).items).to.have.length(5);
    expect((await m.list<IpAddress>("ip", list({ owner: "y" }))).items.map((i) => i.address)).to.deep.equal(["198.51.100.7"]);
    const bad = await statusOf(m.list("network", list({ pageToken: Buffer.from("subnet:x").toString("base64url") })));
    expect(bad.code).to.equal(Code.InvalidArgument);
    expect(bad.message).to.match(/page_token/);
  });

  it("bulk create and delete are all or none", async () => {
    const err = await statusOf(m.bulkCreateNetworks([network("a", ""), network("n1", "")]));
    expect(err.code).to.equal(Code.AlreadyExists);
    expect((await m.list("network", list())).items.map((n) => (n as Network).id)).to.deep.equal(["n1"]);
    await m.bulkCreateNetworks([network("a", ""), network("b", "")]);
    await m.createSubnet(subnet("s1", "n1", "198.51.100.0/24"));
    const del = await statusOf(m.delete("network", [create(ResourceRefSchema, { id: "a" }), create(ResourceRefSchema, { id: "n1" })]));
    expect(del.code).to.equal(Code.FailedPrecondition);
    expect((await m.list("network", list())).items).to.have.length(3);
    await m.delete("network", [create(ResourceRefSchema, { id: "a" }), create(ResourceRefSchema, { id: "b" })]);
    expect((await m.list("network", list())).items).to.have.length(1);
  });

  it("MACs: random under the OUI or specific, released for reuse", async () => {
    const macs = await m.bulkAllocateMacAddresses({
      $typeName: "nsmts.resources.v1.BulkAllocateMacAddressesRequest",
      count: 200,
      oui: "02:00:5e",
      owner: "o",
    });
    expect(new Set(macs.map((x) => x.address)).size).to.equal(200);
    for (const x of macs) expect(x.address.startsWith("02:00:5e:")).to.equal(true);
    const err = await statusOf(
      m.allocateMacAddress({ $typeName: "nsmts.resources.v1.AllocateMacAddressRequest", address: "01:00:5e:00:00:01", oui: "", owner: "" }),
    );
    expect(err.code).to.equal(Code.InvalidArgument);
    expect(err.message).to.match(/address: .*multicast/);
    const first = macs[0];
    if (first === undefined) throw new Error("no mac");
    await m.releaseMacAddress({ $typeName: "nsmts.resources.v1.MacAddressRef", address: first.address, revision: first.revision });
    const again = await m.allocateMacAddress({
      $typeName: "nsmts.resources.v1.AllocateMacAddressRequest",
      address: first.address,
      oui: "",
      owner: "",
    });
    expect(again.address).to.equal(first.address);
  });

  it("the memory store lives on a statedb table whose change stream sees the allocations", async () => {
    const store = createMemoryResourceStore();
    const mm = createResourceManagers({ store });
    await mm.createNetwork(network("n", "198.51.100.0/24"));
    await mm.createSubnet(subnet("s", "n", "198.51.100.0/24"));
    await mm.allocateIpAddress(alloc("s"));
    const txn = store.db.readTxn();
    expect(store.table.count(txn)).to.equal(3);
    expect(store.table.list(txn, "byRef", "subnet/s").map((r) => r.id)).to.deep.equal(["s/198.51.100.2"]);
    await store.close();
  });
});
