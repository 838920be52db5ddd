/**
 * The resource managers on the memory store, IP addresses: concurrent allocations, IPv6, a full subnet,
 * allocation pools and specific addresses, and the validation of CIDRs and gateways.
 */
import { create } from "@bufbuild/protobuf";
import { IpAddressRefSchema, SecurityGroupSchema } from "@nsm-ts/api/resources";
import { Code } from "@nsm-ts/base/status";
import { allIps, alloc, list, network, statusOf, subnet } from "@nsm-ts/testing/resources";
import { expect } from "chai";
import { createResourceManagers, type ResourceManagers } from "./index.js";

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
});
