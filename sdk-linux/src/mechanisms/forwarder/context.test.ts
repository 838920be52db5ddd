import { create } from "@bufbuild/protobuf";
import { ConnectionContextSchema } from "@nsm-ts/api/networkservice";
import { Code, StatusError } from "@nsm-ts/base/status";
import { expect } from "chai";
import { covers, legConfig, normalizePrefix, stableMac } from "./context.js";

describe("mechanisms: ConnectionContext → kernel configuration", () => {
  const cc = create(ConnectionContextSchema, {
    ipContext: {
      srcIpAddrs: ["169.254.0.1/32", "fd00::1/128"],
      dstIpAddrs: ["169.254.0.2/32", "fd00::2/128"],
      srcRoutes: [
        { prefix: "203.0.113.0/24" },
        { prefix: "169.254.0.2/32" },
        { prefix: "198.51.100.7/24", nextHop: "169.254.0.9" },
        { prefix: "fd00:9::/64" },
      ],
      dstRoutes: [{ prefix: "198.51.100.0/25" }],
      ipNeighbors: [{ ip: "169.254.0.2", hardwareAddress: "02:00:00:00:00:02" }],
    },
  });

  it("client side: src addresses, host routes to the peer, src_routes via the dst address of their family, neighbours", () => {
    const c = legConfig(cc, "client", "nsm-1");
    expect(c.addresses).to.deep.equal(["169.254.0.1/32", "fd00::1/128"]);
    expect(c.routes).to.deep.equal([
      { dst: "169.254.0.2/32", dev: "nsm-1" },
      { dst: "fd00::2/128", dev: "nsm-1" },
      { dst: "203.0.113.0/24", gateway: "169.254.0.2", dev: "nsm-1", onlink: true },
      { dst: "198.51.100.0/24", gateway: "169.254.0.9", dev: "nsm-1", onlink: true },
      { dst: "fd00:9::/64", gateway: "fd00::2", dev: "nsm-1", onlink: true },
    ]);
    expect(c.neighbors).to.deep.equal([{ address: "169.254.0.2", mac: "02:00:00:00:00:02", dev: "nsm-1" }]);
  });

  it("endpoint side: dst addresses, dst_routes via the src address, no neighbours", () => {
    const e = legConfig(cc, "endpoint", "nse-1");
    expect(e.addresses).to.deep.equal(["169.254.0.2/32", "fd00::2/128"]);
    expect(e.routes).to.deep.include({ dst: "198.51.100.0/25", gateway: "169.254.0.1", dev: "nse-1", onlink: true });
    expect(e.routes).to.deep.include({ dst: "169.254.0.1/32", dev: "nse-1" });
    expect(e.neighbors).to.deep.equal([]);
  });

  it("adds no host route when an own prefix covers the peer, and tolerates an empty context", () => {
    const c = legConfig(
      create(ConnectionContextSchema, { ipContext: { srcIpAddrs: ["169.254.1.1/30"], dstIpAddrs: ["169.254.1.2/30"] } }),
      "client",
      "x",
    );
    expect(c.routes).to.deep.equal([]);
    expect(legConfig(undefined, "client", "x")).to.deep.equal({ addresses: [], routes: [], neighbors: [] });
  });

  it("takes the client's MAC from ethernet_context.src_mac and the endpoint's from dst_mac, and names a bad one", () => {
    const eth = create(ConnectionContextSchema, { ethernetContext: { srcMac: "02:AA:00:00:00:01", dstMac: "02:aa:00:00:00:02" } });
    expect(legConfig(eth, "client", "nsm-1").mac).to.equal("02:aa:00:00:00:01");
    expect(legConfig(eth, "endpoint", "nse-1").mac).to.equal("02:aa:00:00:00:02");
    expect(legConfig(cc, "client", "nsm-1")).to.not.have.property("mac");
    const bad = create(ConnectionContextSchema, { ethernetContext: { dstMac: "02:aa:00:00:00" } });
    expect(legConfig(bad, "client", "nsm-1")).to.not.have.property("mac");
    expect(() => legConfig(bad, "endpoint", "nse-1"))
      .to.throw(StatusError, /connection\.context\.ethernet_context\.dst_mac "02:aa:00:00:00" is not a MAC address/)
      .with.property("code", Code.InvalidArgument);
  });

  it("normalises prefixes and tests containment", () => {
    expect(normalizePrefix("10.1.2.3/8")).to.equal("10.0.0.0/8");
    expect(normalizePrefix("198.51.100.7")).to.equal("198.51.100.7/32");
    expect(normalizePrefix("fd00:1:2:3::5/48")).to.equal("fd00:1:2::/48");
    expect(normalizePrefix("::ffff:1.2.3.4/128")).to.equal("::ffff:102:304/128");
    expect(normalizePrefix("nonsense/8")).to.equal(undefined);
    expect(normalizePrefix("10.0.0.0/33")).to.equal(undefined);
    expect(covers("169.254.0.0/16", "169.254.3.4")).to.equal(true);
    expect(covers("169.254.0.1/32", "169.254.0.2")).to.equal(false);
    expect(covers("fd00::/8", "fd12::1")).to.equal(true);
    expect(covers("fd00::/8", "169.254.0.1")).to.equal(false);
  });
});

describe("stableMac", () => {
  it("is the same for the same connection and side, different across sides and connections, unicast and locally administered", () => {
    const a = stableMac("5dd7b55e-da9a-46e9-8cdc-2ad911b80e4c", "client");
    expect(a).to.match(/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/);
    expect(stableMac("5dd7b55e-da9a-46e9-8cdc-2ad911b80e4c", "client")).to.equal(a);
    expect(stableMac("5dd7b55e-da9a-46e9-8cdc-2ad911b80e4c", "endpoint")).to.not.equal(a);
    expect(stableMac("122a1d1a-5051-4b4b-bf12-b681489124ef", "client")).to.not.equal(a);
    for (let i = 0; i < 200; i++) {
      const first = Number.parseInt(stableMac(`conn-${i}`, i % 2 ? "client" : "endpoint").slice(0, 2), 16);
      expect(first & 0x01, "unicast").to.equal(0);
      expect(first & 0x02, "locally administered").to.equal(0x02);
    }
  });
});
