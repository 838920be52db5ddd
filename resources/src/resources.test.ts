import { create, type MessageInitShape } from "@bufbuild/protobuf";
import {
  AllocateIpAddressRequestSchema,
  type IpAddress,
  IpAddressRefSchema,
  IpState,
  ListRequestSchema,
  type Network,
  NetworkSchema,
  PortSchema,
  ResourceRefSchema,
  SecurityGroupSchema,
  type Subnet,
  SubnetSchema,
} from "@nsm-ts/api/resources";
import { Code, StatusError } from "@nsm-ts/base/status";
import { expect } from "chai";
import {
  createMemoryResourceStore,
  createPrefixPool,
  createResourceManagers,
  formatIp,
  parseIp,
  RangeBitmap,
  type ResourceManagers,
  type ResourceStore,
  requireCidr,
} from "./index.js";

/** Awaits `p` and returns its StatusError; fails the test when it resolves or throws something else. */
async function statusOf(p: Promise<unknown>): Promise<StatusError> {
  try {
    await p;
  } catch (err) {
    if (err instanceof StatusError) return err;
    throw err;
  }
  expect.fail("expected a StatusError");
}

const network = (id: string, cidr = "198.51.100.0/24"): Network => create(NetworkSchema, { id, cidr });
const subnet = (id: string, networkId: string, cidr: string, extra: MessageInitShape<typeof SubnetSchema> = {}): Subnet =>
  create(SubnetSchema, { id, networkId, cidr, ...extra });
const alloc = (subnetId: string, address = "", owner = "") => create(AllocateIpAddressRequestSchema, { subnetId, address, owner });
const list = (extra: Record<string, unknown> = {}) => create(ListRequestSchema, extra);

async function allIps(m: ResourceManagers, subnetId: string): Promise<IpAddress[]> {
  const out: IpAddress[] = [];
  let pageToken = "";
  do {
    const page = await m.list<IpAddress>("ip", list({ subnetId, pageSize: 1000, pageToken }));
    out.push(...page.items);
    pageToken = page.nextPageToken;
  } while (pageToken !== "");
  return out;
}

describe("resources: addresses and bitmaps", () => {
  it("parses and formats IPv4 and IPv6 canonically", () => {
    for (const [input, want] of [
      ["198.51.100.7", "198.51.100.7"],
      ["fd00:0:0:0:0:0:0:1", "fd00::1"],
      ["FD00::1:0:0:0:1", "fd00:0:0:1::1"],
      ["fd00:0:0:1::", "fd00:0:0:1::"],
      ["::ffff:203.0.113.9", "::ffff:cb00:7109"],
      ["fd00:1:0:0:1:0:0:1", "fd00:1::1:0:0:1"],
    ] as const) {
      const ip = parseIp(input);
      expect(ip, input).to.not.equal(undefined);
      if (ip !== undefined) expect(formatIp(ip)).to.equal(want);
    }
    expect(parseIp("198.51.100.256")).to.equal(undefined);
    expect(parseIp("fd00::1::2")).to.equal(undefined);
  });

  it("rejects CIDRs with host bits or bad lengths, naming the field", () => {
    for (const bad of ["198.51.100.1/24", "198.51.100.0/33", "198.51.100.0", "fd00::/129", "x/8"]) {
      expect(() => requireCidr(bad, "cidr"), bad).to.throw(StatusError, /cidr: /);
    }
    expect(requireCidr("fd00::/64", "cidr").size).to.equal(1n << 64n);
  });

  it("hands out the lowest free offset first, reuses freed ones and reports full", () => {
    const b = new RangeBitmap(70n, "first");
    const got = Array.from({ length: 70 }, () => b.take());
    expect(got).to.deep.equal(Array.from({ length: 70 }, (_, i) => BigInt(i)));
    expect(b.take()).to.equal(undefined);
    b.clear(33n);
    b.clear(5n);
    expect(b.take()).to.equal(5n);
    expect(b.take()).to.equal(33n);
    expect(b.free).to.equal(0n);
  });

  it("spread first-free starts at a random point, wraps, and still finds the last free offset", () => {
    const b = new RangeBitmap(100n, "first");
    const seen = new Set<bigint>();
    for (let i = 0; i < 100; i++) seen.add(b.take(true) ?? -1n);
    expect(seen.size).to.equal(100);
    expect(seen.has(-1n)).to.equal(false);
    expect(b.take(true)).to.equal(undefined);
    b.clear(0n);
    expect(b.take(true)).to.equal(0n);
    b.clear(99n);
    expect(b.take(true)).to.equal(99n);
  });

  it("random probing finds every free offset of a dense range and of a sparse one", () => {
    const dense = new RangeBitmap(1000n, "random");
    const seen = new Set<bigint>();
    for (let i = 0; i < 1000; i++) {
      const o = dense.take();
      expect(o).to.not.equal(undefined);
      seen.add(o ?? -1n);
    }
    expect(seen.size).to.equal(1000);
    expect(dense.take()).to.equal(undefined);
    const sparse = new RangeBitmap(1n << 64n, "random");
    const offs = new Set(Array.from({ length: 500 }, () => sparse.take()));
    expect(offs.size).to.equal(500);
  });
});

describe("resources: managers on the memory store", () => {
  let m: ResourceManagers;
  beforeEach(async () => {
    m = createResourceManagers();
    await m.createNetwork(network("n1", "198.51.100.0/22"));
  });
  afterEach(async () => {
    await m.store.close();
  });

  it("1,000 concurrent allocations in one subnet: no duplicate, exact count", async () => {
    await m.createSubnet(subnet("s1", "n1", "198.51.100.0/22"));
    const ips = await Promise.all(Array.from({ length: 1000 }, (_, i) => m.allocateIpAddress(alloc("s1", "", `c${i}`))));
    const addrs = new Set(ips.map((ip) => ip.address));
    expect(addrs.size).to.equal(1000);
    expect(addrs.has("198.51.100.0")).to.equal(false); // network
    expect(addrs.has("198.51.100.1")).to.equal(false); // gateway
    const stored = await allIps(m, "s1");
    expect(stored.length).to.equal(1000);
    expect(new Set(stored.map((ip) => ip.address))).to.deep.equal(addrs);
    // First free for IPv4: exactly the 1000 lowest allocatable addresses.
    expect(addrs.has("198.51.100.2")).to.equal(true);
    expect(addrs.has("198.51.103.233")).to.equal(true);
    expect(addrs.has("198.51.103.234")).to.equal(false);
  });

  it("allocations in two subnets interleave without interfering", async () => {
    await m.createSubnet(subnet("a", "n1", "198.51.100.0/24"));
    await m.createSubnet(subnet("b", "n1", "198.51.101.0/24"));
    const ips = await Promise.all(Array.from({ length: 200 }, (_, i) => m.allocateIpAddress(alloc(i % 2 === 0 ? "a" : "b"))));
    expect(ips.filter((ip) => ip.subnetId === "a" && ip.address.startsWith("198.51.100.")).length).to.equal(100);
    expect(ips.filter((ip) => ip.subnetId === "b" && ip.address.startsWith("198.51.101.")).length).to.equal(100);
  });

  it("IPv6 subnets hand out random, distinct addresses inside the CIDR", async () => {
    await m.createNetwork(network("v6", "fd00:1::/48"));
    await m.createSubnet(subnet("s6", "v6", "fd00:1:0:1::/64"));
    const ips = await Promise.all(Array.from({ length: 300 }, () => m.allocateIpAddress(alloc("s6"))));
    expect(new Set(ips.map((ip) => ip.address)).size).to.equal(300);
    for (const ip of ips) expect(ip.address.startsWith("fd00:1:0:1:")).to.equal(true, ip.address);
    expect(ips.some((ip) => ip.address === "fd00:1:0:1::2")).to.equal(false);
  });

  it("a full subnet answers ResourceExhausted naming subnet_id; a release makes room", async () => {
    await m.createSubnet(subnet("s1", "n1", "198.51.100.0/29"));
    const ips = await Promise.all(Array.from({ length: 5 }, () => m.allocateIpAddress(alloc("s1"))));
    expect(ips.map((ip) => ip.address).sort()).to.deep.equal([
      "198.51.100.2",
      "198.51.100.3",
      "198.51.100.4",
      "198.51.100.5",
      "198.51.100.6",
    ]);
    const err = await statusOf(m.allocateIpAddress(alloc("s1")));
    expect(err.code).to.equal(Code.ResourceExhausted);
    expect(err.message).to.match(/subnet_id: subnet "s1"/);
    const bulk = await statusOf(
      m.bulkAllocateIpAddresses({ $typeName: "nsmts.resources.v1.BulkAllocateIpAddressesRequest", subnetId: "s1", count: 1, owner: "" }),
    );
    expect(bulk.code).to.equal(Code.ResourceExhausted);
    await m.releaseIpAddress(create(IpAddressRefSchema, { subnetId: "s1", address: "198.51.100.4" }));
    expect((await m.allocateIpAddress(alloc("s1"))).address).to.equal("198.51.100.4");
  });

  it("allocation pools bound the addresses; a specific address outside the subnet or reserved is InvalidArgument naming address", async () => {
    await m.createSubnet(subnet("s1", "n1", "198.51.100.0/24", { allocationPools: [{ start: "198.51.100.10", end: "198.51.100.11" }] }));
    expect((await m.allocateIpAddress(alloc("s1"))).address).to.equal("198.51.100.10");
    expect((await m.allocateIpAddress(alloc("s1", "198.51.100.11"))).address).to.equal("198.51.100.11");
    for (const [address, why] of [
      ["198.51.101.5", /address: 198\.51\.101\.5 is outside subnet "s1"/],
      ["198.51.100.1", /address: 198\.51\.100\.1 is the gateway/],
      ["198.51.100.255", /address: .* is the broadcast address/],
      ["198.51.100.50", /address: .* outside the allocation pools/],
      ["not-an-ip", /address: "not-an-ip" is not an IP address/],
    ] as const) {
      const err = await statusOf(m.allocateIpAddress(alloc("s1", address)));
      expect(err.code, address).to.equal(Code.InvalidArgument);
      expect(err.message).to.match(why);
    }
    const taken = await statusOf(m.allocateIpAddress(alloc("s1", "198.51.100.10")));
    expect(taken.code).to.equal(Code.AlreadyExists);
    expect((await statusOf(m.allocateIpAddress(alloc("s1")))).code).to.equal(Code.ResourceExhausted);
  });

  it("invalid CIDRs and gateways outside the subnet are InvalidArgument naming the field", async () => {
    const cases: Array<[Promise<unknown>, RegExp]> = [
      [m.createNetwork(network("bad", "198.51.100.0/40")), /^resources: cidr: /],
      [m.createSubnet(subnet("s", "n1", "198.51.100.7/24")), /^resources: cidr: .*host bits/],
      [m.createSubnet(subnet("s", "n1", "203.0.113.0/24")), /^resources: cidr: .*outside network "n1"/],
      [m.createSubnet(subnet("s", "n1", "198.51.100.0/24", { gatewayIp: "198.51.101.1" })), /^resources: gateway_ip: /],
      [m.bulkCreateSubnets([subnet("x", "n1", "198.51.100.0/25"), subnet("y", "n1", "bogus")]), /^resources: items\[1\]\.cidr: /],
      [
        m.createSecurityGroup(create(SecurityGroupSchema, { id: "g", rules: [{ remoteIpPrefix: "198.51.100.0/99" }] })),
        /rules\[0\]\.remote_ip_prefix/,
      ],
    ];
    for (const [p, re] of cases) {
      const err = await statusOf(p);
      expect(err.code).to.equal(Code.InvalidArgument);
      expect(err.message).to.match(re);
    }
    // The failed bulk created nothing.
    expect((await m.list("subnet", list())).items).to.deep.equal([]);
  });

  it("overlapping subnets of one network are refused", async () => {
    await m.createSubnet(subnet("a", "n1", "198.51.100.0/24"));
    const err = await statusOf(m.createSubnet(subnet("b", "n1", "198.51.100.128/25")));
    expect(err.code).to.equal(Code.InvalidArgument);
    expect(err.message).to.match(/cidr: .*overlaps subnet "a"/);
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

describe("resources: vL3 prefix pool", () => {
  it("allocates the requested prefix, else the lowest free one outside the exclusions, and releases", () => {
    const pool = createPrefixPool({ prefix: "169.254.0.0/16", prefixLength: 24, excludePrefixes: ["169.254.0.0/24"] });
    expect(pool.allocate("169.254.7.0/24", []).prefix).to.equal("169.254.7.0/24");
    expect(pool.allocate("169.254.7.0/24", []).prefix).to.equal("169.254.1.0/24"); // taken: a fresh one
    expect(pool.allocate("203.0.113.0/24", ["169.254.2.0/23"]).prefix).to.equal("169.254.4.0/24");
    const l = pool.allocate("", []);
    expect(l.prefix).to.equal("169.254.2.0/24");
    pool.release(l);
    expect(pool.allocate("", []).prefix).to.equal("169.254.2.0/24");
    expect(pool.free).to.equal(256n - 5n);
    const tiny = createPrefixPool({ prefix: "198.51.100.0/24", prefixLength: 25 });
    tiny.allocate("", []);
    tiny.allocate("", []);
    expect(() => tiny.allocate("", [])).to.throw(StatusError, /no free \/25/);
    expect(() => tiny.allocate("", ["bogus"])).to.throw(StatusError, /exclude_prefixes\[0\]/);
  });
});
