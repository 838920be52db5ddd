/**
 * The enforcer's view of the resource managers over gRPC (no kernel, no root): reads served from the mirror of
 * the Watch RPCs, changes reported after the mirror has them, group membership kept per group, and a feed that
 * ends when the managers go away.
 */
import { create } from "@bufbuild/protobuf";
import { NetworkSchema, PortSchema, SecurityGroupSchema, SubnetSchema } from "@nsm-ts/api/resources";
import { type Channel, createServer, dial, type NsmServer } from "@nsm-ts/base/grpc";
import { createMemoryResourceStore, type ResourceManagers, registerResourceManagers } from "@nsm-ts/resources";
import { enforcement } from "@nsm-ts/sdk-linux";
import { expect } from "chai";

describe("enforcement: the gRPC resource view (Watch RPCs and their mirror)", function () {
  this.timeout(20_000);
  let server: NsmServer;
  let managers: ResourceManagers;
  let channel: Channel;
  let stop: AbortController;

  beforeEach(async () => {
    server = createServer();
    ({ managers } = registerResourceManagers(server, { store: createMemoryResourceStore() }));
    await managers.createNetwork(create(NetworkSchema, { id: "n1", cidr: "198.51.100.0/24" }));
    await managers.createSubnet(create(SubnetSchema, { id: "s1", networkId: "n1", cidr: "198.51.100.0/24" }));
    await managers.createSecurityGroup(create(SecurityGroupSchema, { id: "g1", name: "one" }));
    await managers.createPort(create(PortSchema, { id: "p1", networkId: "n1", fixedIps: [{ subnetId: "s1" }], securityGroupIds: ["g1"] }));
    channel = dial(await server.listen("tcp://127.0.0.1:0"));
    stop = new AbortController();
  });
  afterEach(async () => {
    stop.abort();
    channel.close();
    await server.close();
  });

  it("answers from the synced mirror and reports each later change after the mirror has it", async () => {
    const view = enforcement.createGrpcResourceView(channel);
    const w = view.watch(stop.signal);
    await w.ready;
    expect((await view.getSecurityGroup("g1", stop.signal))?.name).to.equal("one");
    expect((await view.portsInGroup("g1", stop.signal)).map((p) => p.id)).to.deep.equal(["p1"]);
    expect(await view.getPort("missing", stop.signal)).to.equal(undefined);

    const changes = w.changes[Symbol.asyncIterator]();
    await managers.updateSecurityGroup(create(SecurityGroupSchema, { id: "g1", name: "uno" }));
    expect((await changes.next()).value).to.deep.equal({ kind: "securitygroup", id: "g1" });
    expect((await view.getSecurityGroup("g1", stop.signal))?.name).to.equal("uno");

    // A port moving to another group leaves the first group's members.
    await managers.createSecurityGroup(create(SecurityGroupSchema, { id: "g2" }));
    expect((await changes.next()).value).to.deep.equal({ kind: "securitygroup", id: "g2" });
    const p1 = await view.getPort("p1", stop.signal);
    if (p1 === undefined) throw new Error("p1 is not in the mirror");
    await managers.updatePort(create(PortSchema, { ...p1, securityGroupIds: ["g2"], revision: "" }));
    // The change names the groups the port was in and is in now: both groups' members changed.
    expect((await changes.next()).value).to.deep.equal({ kind: "port", id: "p1", groups: ["g1", "g2"] });
    expect(await view.portsInGroup("g1", stop.signal)).to.deep.equal([]);
    expect((await view.portsInGroup("g2", stop.signal)).map((p) => p.id)).to.deep.equal(["p1"]);
  });

  it("reads through the RPCs before a watch synced, and ends the feed when the managers go away", async () => {
    const view = enforcement.createGrpcResourceView(channel);
    expect((await view.getSecurityGroup("g1", stop.signal))?.name).to.equal("one");
    expect((await view.portsInGroup("g1", stop.signal)).map((p) => p.id)).to.deep.equal(["p1"]);
    const w = view.watch(stop.signal);
    await w.ready;
    const changes = w.changes[Symbol.asyncIterator]();
    const ended = changes.next().then(
      () => "ended",
      (err: unknown) => (err as Error).message,
    );
    await server.close();
    // The stream's error (or "ended" from our side) ends the feed; the enforcer then reopens it and resyncs.
    expect(await ended).to.match(/shutting down|watch at .* ended|closed/);
  });
});
