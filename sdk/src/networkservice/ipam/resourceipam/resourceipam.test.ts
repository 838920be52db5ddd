import { create } from "@bufbuild/protobuf";
import { type Connection, ConnectionSchema, NetworkServiceRequestSchema } from "@nsm-ts/api/networkservice";
import { IpAddressManager, NetworkSchema, PortManager, SecurityGroupSchema, SubnetSchema } from "@nsm-ts/api/resources";
import { CallContext } from "@nsm-ts/base/context";
import { type Channel, createClient, createServer, dial, type NsmServer } from "@nsm-ts/base/grpc";
import { Code, isStatusError } from "@nsm-ts/base/status";
import { createMemoryResourceStore, type ResourceManagers, registerResourceManagers } from "@nsm-ts/resources";
import { newErrorElement } from "@nsm-ts/testing/elements";
import { expect } from "chai";
import { chain, handler } from "../../core/index.js";
import { resourceipam } from "../index.js";

const outcome = (p: Promise<unknown>): Promise<unknown> =>
  p.then(
    () => undefined,
    (e: unknown) => e,
  );
const request = (id: string, excluded: string[] = []) =>
  create(NetworkServiceRequestSchema, { connection: { id, context: { ipContext: { excludedPrefixes: excluded } } } });
const refresh = (c: Connection) => create(NetworkServiceRequestSchema, { connection: c });
const ip = (c: Connection) => {
  const x = c.context?.ipContext;
  return {
    src: x?.srcIpAddrs,
    dst: x?.dstIpAddrs,
    srcRoutes: x?.srcRoutes.map((r) => r.prefix),
    dstRoutes: x?.dstRoutes.map((r) => r.prefix),
  };
};

describe("resourceipam (addresses from the resource manager over gRPC)", function () {
  this.timeout(10_000);
  let server: NsmServer;
  let channel: Channel;
  let url: string;
  let managers: ResourceManagers;
  const channels: Channel[] = [];

  beforeEach(async () => {
    server = createServer();
    ({ managers } = registerResourceManagers(server, { store: createMemoryResourceStore() }));
    // 198.51.100.0/29: .0 network, .1 gateway, .7 broadcast are reserved → .2–.6 free, room for two pairs.
    await managers.createNetwork(create(NetworkSchema, { id: "n1", cidr: "198.51.100.0/24" }));
    await managers.createSubnet(create(SubnetSchema, { id: "s1", networkId: "n1", cidr: "198.51.100.0/29" }));
    await managers.createNetwork(create(NetworkSchema, { id: "n6", cidr: "fd00:5::/64" }));
    await managers.createSubnet(create(SubnetSchema, { id: "s6", networkId: "n6", cidr: "fd00:5::/120" }));
    url = await server.listen("tcp://127.0.0.1:0");
    channel = dial(url);
    channels.push(channel);
  });

  afterEach(async () => {
    for (const c of channels.splice(0)) c.close();
    await server.close();
  });

  const listPorts = async () => (await createClient(PortManager, channel).listPorts({ subnetId: "s1" })).items;

  it("gives two connections distinct pairs with routes, recorded as ports owned by the connection ids", async () => {
    const h = handler(resourceipam.newServer({ channel, subnetId: "s1" }));
    const c1 = await h.request(CallContext.create(), request("c1"));
    const c2 = await h.request(CallContext.create(), request("c2"));
    expect(ip(c1)).to.deep.equal({
      dst: ["198.51.100.2/32"],
      src: ["198.51.100.3/32"],
      srcRoutes: ["198.51.100.2/32"],
      dstRoutes: ["198.51.100.3/32"],
    });
    expect(ip(c2)).to.deep.equal({
      dst: ["198.51.100.4/32"],
      src: ["198.51.100.5/32"],
      srcRoutes: ["198.51.100.4/32"],
      dstRoutes: ["198.51.100.5/32"],
    });
    const ports = await listPorts();
    expect(ports.map((p) => [p.owner, p.fixedIps.map((f) => f.ipAddress)])).to.deep.equal([
      ["c1", ["198.51.100.2", "198.51.100.3"]],
      ["c2", ["198.51.100.4", "198.51.100.5"]],
    ]);
    // The port id travels with the connection, so a kernel forwarder can enforce the port's security groups.
    expect(c1.context?.extraContext[resourceipam.PORT_CONTEXT_KEY]).to.equal(ports[0]?.id);
    expect(c2.context?.extraContext[resourceipam.PORT_CONTEXT_KEY]).to.equal(ports[1]?.id);
  });

  it("creates ports with the security groups chosen for the connection (a kernel forwarder enforces them)", async () => {
    await managers.createSecurityGroup(create(SecurityGroupSchema, { id: "web" }));
    const h = handler(resourceipam.newServer({ channel, subnetId: "s1", securityGroups: (conn) => [conn.labels.group ?? "none"] }));
    const req = request("c1");
    if (req.connection) req.connection.labels = { group: "web" };
    await h.request(CallContext.create(), req);
    expect((await listPorts()).map((p) => p.securityGroupIds)).to.deep.equal([["web"]]);
  });

  it("gives two racing first requests of one connection the same single port", async () => {
    const a = handler(resourceipam.newServer({ channel, subnetId: "s1" }));
    const b = handler(resourceipam.newServer({ channel, subnetId: "s1" }));
    const [x, y] = await Promise.all([a.request(CallContext.create(), request("c1")), b.request(CallContext.create(), request("c1"))]);
    expect(ip(x)).to.deep.equal(ip(y));
    expect(await listPorts()).to.have.length(1);
    const ips = await createClient(IpAddressManager, channel).listIpAddresses({ subnetId: "s1" });
    expect(ips.items).to.have.length(2);
  });

  it("hands out /128 pairs from an IPv6 subnet", async () => {
    const h = handler(resourceipam.newServer({ channel, subnetId: "s6" }));
    const c = await h.request(CallContext.create(), request("c1"));
    expect(c.context?.ipContext?.dstIpAddrs[0]).to.match(/^fd00:5::[0-9a-f]+\/128$/);
    expect(c.context?.ipContext?.srcIpAddrs[0]).to.match(/^fd00:5::[0-9a-f]+\/128$/);
    expect(c.context?.ipContext?.srcIpAddrs[0]).to.not.equal(c.context?.ipContext?.dstIpAddrs[0]);
  });

  it("keeps the pair on refresh without creating another port", async () => {
    const h = handler(resourceipam.newServer({ channel, subnetId: "s1" }));
    const ctx = CallContext.create(); // the same per-connection metadata, as the metadata element gives a refresh
    const first = await h.request(ctx, request("c1"));
    const again = await h.request(ctx, refresh(first));
    expect(ip(again)).to.deep.equal(ip(first));
    expect(ip(again).src).to.have.length(1);
    expect(await listPorts()).to.have.length(1);
  });

  it("gives a restarted endpoint (a new element, no metadata) the same pair for the same connection id, and lets it close it", async () => {
    const before = handler(resourceipam.newServer({ channel, subnetId: "s1" }));
    const c1 = await before.request(CallContext.create(), request("c1"));
    await before.request(CallContext.create(), request("c2"));

    const after = handler(resourceipam.newServer({ channel, subnetId: "s1" }));
    const healed = await after.request(CallContext.create(), refresh(c1));
    expect(ip(healed)).to.deep.equal(ip(c1));
    expect(await listPorts()).to.have.length(2);

    // The restarted endpoint never saw c2's request; its Close still frees c2's port (found by owner).
    await after.close(CallContext.create(), create(ConnectionSchema, { id: "c2" }));
    expect((await listPorts()).map((p) => p.owner)).to.deep.equal(["c1"]);
  });

  it("deletes the port (and its addresses) on Close and when the first Request fails", async () => {
    const ctx = CallContext.create();
    const h = handler(resourceipam.newServer({ channel, subnetId: "s1" }));
    const c = await h.request(ctx, request("c1"));
    await h.close(ctx, c);
    expect(await listPorts()).to.deep.equal([]);
    const ips = await createClient(IpAddressManager, channel).listIpAddresses({ subnetId: "s1" });
    expect(ips.items).to.deep.equal([]);

    const failing = handler(chain(resourceipam.newServer({ channel, subnetId: "s1" }), newErrorElement()));
    expect(isStatusError(await outcome(failing.request(CallContext.create(), request("c2"))), Code.Unavailable)).to.equal(true);
    expect(await listPorts()).to.deep.equal([]);
    // Addresses really went back: the next connection gets the lowest pair again.
    expect(ip(await h.request(CallContext.create(), request("c3"))).dst).to.deep.equal(["198.51.100.2/32"]);
  });

  it("keeps the port when a refresh fails", async () => {
    const ctx = CallContext.create();
    const h = handler(chain(resourceipam.newServer({ channel, subnetId: "s1" }), newErrorElement({ requestFailOn: [1] })));
    const c = await h.request(ctx, request("c1"));
    expect(await outcome(h.request(ctx, refresh(c)))).to.be.instanceOf(Error);
    expect(await listPorts()).to.have.length(1);
  });

  it("fails with ResourceExhausted when the subnet is full and leaves no half-allocated pair behind", async () => {
    const h = handler(resourceipam.newServer({ channel, subnetId: "s1" }));
    await h.request(CallContext.create(), request("c1"));
    await h.request(CallContext.create(), request("c2"));
    const err = await outcome(h.request(CallContext.create(), request("c3")));
    expect(isStatusError(err, Code.ResourceExhausted), String(err)).to.equal(true);
    expect((err as Error).message).to.include('subnet "s1"');
    expect(await listPorts()).to.have.length(2);
    const ips = await createClient(IpAddressManager, channel).listIpAddresses({ subnetId: "s1" });
    expect(ips.items).to.have.length(4);
  });

  it("avoids excluded prefixes by asking for specific free addresses", async () => {
    const h = handler(resourceipam.newServer({ channel, subnetId: "s1" }));
    await h.request(CallContext.create(), request("c0")); // takes .2 and .3
    const c = await h.request(CallContext.create(), request("c1", ["198.51.100.4/32", "203.0.113.0/24"]));
    expect(ip(c)).to.deep.include({ dst: ["198.51.100.5/32"], src: ["198.51.100.6/32"] });
    expect((await listPorts()).map((p) => p.fixedIps.map((f) => f.ipAddress))).to.deep.equal([
      ["198.51.100.2", "198.51.100.3"],
      ["198.51.100.5", "198.51.100.6"],
    ]);
    const err = await outcome(h.request(CallContext.create(), request("c2", ["198.51.100.5/32"])));
    expect(isStatusError(err, Code.ResourceExhausted), String(err)).to.equal(true);
    expect((err as Error).message).to.include("outside the excluded prefixes");
    const bad = await outcome(h.request(CallContext.create(), request("c3", ["not-a-prefix"])));
    expect(isStatusError(bad, Code.InvalidArgument)).to.equal(true);
  });

  it("moves a connection whose pair became excluded to a new pair on refresh, also after a restart", async () => {
    const ctx = CallContext.create();
    const h = handler(resourceipam.newServer({ channel, subnetId: "s1" }));
    const first = await h.request(ctx, request("c1"));
    first.context?.ipContext?.excludedPrefixes.push("198.51.100.2/32");
    const moved = await h.request(ctx, refresh(first));
    expect(ip(moved)).to.deep.equal({
      dst: ["198.51.100.3/32"],
      src: ["198.51.100.4/32"],
      srcRoutes: ["198.51.100.3/32"],
      dstRoutes: ["198.51.100.4/32"],
    });
    expect((await listPorts()).map((p) => p.fixedIps.map((f) => f.ipAddress))).to.deep.equal([["198.51.100.3", "198.51.100.4"]]);

    moved.context?.ipContext?.excludedPrefixes.push("198.51.100.4/32");
    const restarted = handler(resourceipam.newServer({ channel, subnetId: "s1" }));
    const again = await restarted.request(CallContext.create(), refresh(moved));
    expect(ip(again)).to.deep.equal({
      dst: ["198.51.100.3/32"],
      src: ["198.51.100.5/32"],
      srcRoutes: ["198.51.100.3/32"],
      dstRoutes: ["198.51.100.5/32"],
    });
    expect(await listPorts()).to.have.length(1);
  });

  it("fails with NotFound naming the subnet when it does not exist", async () => {
    const h = handler(resourceipam.newServer({ channel, subnetId: "nope" }));
    const err = await outcome(h.request(CallContext.create(), request("c1")));
    expect(isStatusError(err, Code.NotFound), String(err)).to.equal(true);
    expect((err as Error).message).to.include('subnet "nope"');
  });

  it("fails with Unavailable naming the setting when the manager cannot be reached", async () => {
    const gone = createServer();
    const goneUrl = await gone.listen("tcp://127.0.0.1:0");
    await gone.close();
    const ch = dial(goneUrl);
    channels.push(ch);
    const h = handler(resourceipam.newServer({ channel: ch, subnetId: "s1", describe: `NSM_IPAM_URL=${goneUrl}` }));
    const err = await outcome(h.request(CallContext.create(), request("c1")));
    expect(isStatusError(err, Code.Unavailable), String(err)).to.equal(true);
    expect((err as Error).message).to.include(`NSM_IPAM_URL=${goneUrl}`);
  });
});
