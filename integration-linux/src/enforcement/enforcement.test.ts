/**
 * Acceptance of enforcement on connections, in real namespaces: two client pods get ports (through resourceipam)
 * in one subnet from the resource managers; the kernel forwarder's enforcer turns the ports' security groups into
 * nftables rules on the clients' interfaces, the subnet's route table and the connection's policy routes into
 * routes and rules, follows a group change through the Watch RPCs, and leaves nothing behind on Close.
 */
import { create } from "@bufbuild/protobuf";
import { type Connection, type NetworkServiceRequest, PolicyRouteSchema } from "@nsm-ts/api/networkservice";
import {
  ListRequestSchema,
  NetworkSchema,
  type Port,
  PortSchema,
  RouteTableSchema,
  SecurityGroupSchema,
  SubnetSchema,
} from "@nsm-ts/api/resources";
import { CallContext } from "@nsm-ts/base/context";
import { type Channel, createServer, dial, type NsmServer } from "@nsm-ts/base/grpc";
import { createMemoryResourceStore, type ResourceManagers, registerResourceManagers } from "@nsm-ts/resources";
import {
  chain,
  handler,
  ipam,
  mechanisms,
  metadata,
  type NetworkServiceElement,
  type NetworkServiceHandler,
} from "@nsm-ts/sdk/networkservice";
import { createKernelForwarder, enforcement, kernel, type Netns, nft, runCommand } from "@nsm-ts/sdk-linux";
import { expect } from "chai";
import type { KernelFixture } from "../kernel/fixture.js";
import { forwarderPart, owned, request, useKernelFixture } from "../mechanisms/xconnect.fixture.js";
import { connects, Listeners, spyingNft } from "./enforcement.fixture.js";

const rule = { etherType: "IPv4", portRangeMin: 0, portRangeMax: 0, remoteIpPrefix: "", remoteGroupId: "" };
/** web: TCP 8080 from the members of `clients` only; everything out. */
const web = (port: number) =>
  create(SecurityGroupSchema, {
    id: "web",
    rules: [
      { ...rule, direction: "ingress", protocol: "tcp", portRangeMin: port, portRangeMax: port, remoteGroupId: "clients" },
      { ...rule, direction: "egress" },
    ],
  });

/** Adds a policy route to every connection: TCP to 8080 from the client's address looks up a table of its own. */
const policy: NetworkServiceElement = {
  name: "test-policy",
  async request(ctx, req, next) {
    const ip = req.connection?.context?.ipContext;
    const src = ip?.srcIpAddrs[0];
    if (ip !== undefined && src !== undefined && ip.policies.length === 0) {
      ip.policies.push(create(PolicyRouteSchema, { from: src, proto: "6", dstPort: "8080", routes: [{ prefix: "203.0.113.0/24" }] }));
    }
    return next.request(ctx, req);
  },
  close: (ctx, conn, next) => next.close(ctx, conn),
};

async function ourRules(ns: Netns): Promise<string[]> {
  const r = await runCommand(ns.execArgv(["ip", "-4", "rule", "show"]));
  return r.stdout.split("\n").filter((l) => l.includes(`proto ${enforcement.ENFORCE_PROTO}`));
}

describe("enforcement on connections: security groups, route tables and policy routes in real namespaces", function () {
  this.timeout(60_000);
  let fx: KernelFixture;
  let owner: string;
  useKernelFixture((f, o) => {
    fx = f;
    owner = o;
  });

  let server: NsmServer;
  let managers: ResourceManagers;
  let channel: Channel;
  let stop: AbortController;
  let enforcer: enforcement.Enforcer;
  let spy: ReturnType<typeof spyingNft>;
  const listeners = new Listeners();
  const ctx = CallContext.create();
  let a: Netns;
  let b: Netns;
  let h: NetworkServiceHandler;

  before(async function () {
    const r = await runCommand(["nft", "--version"]).catch(() => undefined);
    if (r?.code !== 0) {
      process.stderr.write("      skipping enforcement tests: nft is not installed (apt-get install nftables)\n");
      this.skip();
    }
  });

  beforeEach(async () => {
    server = createServer();
    ({ managers } = registerResourceManagers(server, { store: createMemoryResourceStore() }));
    await managers.createNetwork(create(NetworkSchema, { id: "n1", cidr: "198.51.100.0/24" }));
    // The route table sends the whole subnet through the connection, so one client reaches the other via the endpoint.
    await managers.createRouteTable(create(RouteTableSchema, { id: "rt1", networkId: "n1", routes: [{ destination: "198.51.100.0/24" }] }));
    await managers.createSubnet(create(SubnetSchema, { id: "s1", networkId: "n1", cidr: "198.51.100.0/24", routeTableId: "rt1" }));
    await managers.createSecurityGroup(create(SecurityGroupSchema, { id: "clients", rules: [{ ...rule, direction: "egress" }] }));
    await managers.createSecurityGroup(web(8080));
    channel = dial(await server.listen("tcp://127.0.0.1:0"));

    a = await fx.netns("a");
    b = await fx.netns("b");
    const e = await fx.netns("e");
    const f = await fx.netns("f");
    await runCommand(e.execArgv(["sysctl", "-qw", "net.ipv4.ip_forward=1"]));
    stop = new AbortController();
    spy = spyingNft();
    enforcer = enforcement.createEnforcer({
      owner,
      view: enforcement.createGrpcResourceView(channel),
      signal: stop.signal,
      nft: spy.exec,
    });
    const fwd = createKernelForwarder({ owner, forwarderNetnsUrl: f.path, enforcer });
    h = handler(
      chain(
        ...forwarderPart(fwd, "unix:///tmp/nse.sock"),
        metadata.newServer(),
        mechanisms.newServer({ KERNEL: kernel.newServer({ netnsUrl: e.path }) }),
        // Each client's group comes from its request labels, as an operator's policy would choose it.
        ipam.resourceipam.newServer({ channel, subnetId: "s1", securityGroups: (conn) => [conn.labels.group ?? "clients"] }),
        policy,
      ),
    );
  });

  afterEach(async () => {
    await listeners.close();
    stop?.abort();
    await enforcer?.stopped;
    channel?.close();
    await server?.close();
  });

  const requestOf = (id: string, ns: Netns, ifName: string, group: string): NetworkServiceRequest => {
    const req = request(id, ns, ifName);
    if (req.connection) req.connection.labels = { group };
    return req;
  };
  const srcOf = (c: Connection): string => (c.context?.ipContext?.srcIpAddrs[0] ?? "").split("/")[0] ?? "";

  it("8080 connects only from the other pod's group, 22 and ping do not; a group change applies within 1 s; teardown is clean", async () => {
    const ca = await h.request(ctx, requestOf("conn-a", a, "nsm-a", "web"));
    const cb = await h.request(ctx, requestOf("conn-b", b, "nsm-b", "clients"));
    const addrA = srcOf(ca);
    expect(addrA).to.match(/^198\.51\.100\.\d+$/);
    await listeners.listen(a, [8080, 22]);

    // The route table's entry routes the subnet via each connection (proto 78 marks it as ours).
    const routesA = (await runCommand(a.execArgv(["ip", "route", "show", "proto", String(enforcement.ENFORCE_PROTO)]))).stdout;
    expect(routesA).to.match(/^198\.51\.100\.0\/24 via 198\.51\.100\.\d+ dev nsm-a onlink/m);
    // The policy route: a rule to a table of the connection's own, holding the policy's route.
    const base = enforcement.policyTableBase(owner, "conn-a");
    expect((await runCommand(a.execArgv(["ip", "rule", "show"]))).stdout).to.include(
      `from ${addrA} ipproto tcp dport 8080 lookup ${base} proto ${enforcement.ENFORCE_PROTO}`,
    );
    expect((await runCommand(a.execArgv(["ip", "route", "show", "table", String(base)]))).stdout).to.match(/^203\.0\.113\.0\/24 via /m);

    expect(await connects(b, addrA, 8080)).to.equal(true); // B is in `clients`
    expect(await connects(b, addrA, 22)).to.equal(false);
    const ping = await runCommand(b.execArgv(["ping", "-c1", "-W1", "-n", addrA]));
    expect(ping.code).to.not.equal(0);

    // Change the group: 22 instead of 8080. The Watch RPC → the enforcer → the kernel, within 1 s.
    const applied = spy.until(
      (t, ns) =>
        ns.sameAs(a) && (t.chains.find((c) => c.name === "sg_ingress")?.rules.some((r) => r.includes("tcp dport 22 accept")) ?? false),
    );
    const t0 = performance.now();
    await managers.updateSecurityGroup(web(22));
    await applied;
    const ms = performance.now() - t0;
    expect(ms).to.be.below(1000);
    expect(await connects(b, addrA, 22)).to.equal(true);
    expect(await connects(b, addrA, 8080)).to.equal(false);

    await h.close(ctx, ca);
    await h.close(ctx, cb);
    expect(await nft.findNftLeftovers({ namespaces: [a.path, b.path] })).to.deep.equal([]);
    expect(await ourRules(a)).to.deep.equal([]);
    expect(await ourRules(b)).to.deep.equal([]);
    expect(await owned(owner, a, b)).to.deep.equal([]);
    expect(enforcer.attached()).to.deep.equal([]);
  });

  it("a client that joins the remote group later is admitted without touching the web pod's connection", async () => {
    const ca = await h.request(ctx, requestOf("conn-a", a, "nsm-a", "web"));
    await managers.createSecurityGroup(create(SecurityGroupSchema, { id: "other", rules: [{ ...rule, direction: "egress" }] }));
    const cb = await h.request(ctx, requestOf("conn-b", b, "nsm-b", "other"));
    await listeners.listen(a, [8080]);
    const addrA = srcOf(ca);
    expect(await connects(b, addrA, 8080)).to.equal(false); // B's port is in `other`, not in `clients`

    const portB = (await managers.list<Port>("port", create(ListRequestSchema, { owner: "conn-b" }))).items[0];
    if (portB === undefined) throw new Error("conn-b has no port");
    const admitted = spy.until((t, ns) => ns.sameAs(a) && t.chains.some((c) => c.rules.some((r) => r.includes(srcOf(cb)))));
    await managers.updatePort(create(PortSchema, { ...portB, securityGroupIds: ["clients"], revision: "" }));
    await admitted;
    expect(await connects(b, addrA, 8080)).to.equal(true);

    await h.close(ctx, ca);
    await h.close(ctx, cb);
    expect(await nft.findNftLeftovers({ namespaces: [a.path, b.path] })).to.deep.equal([]);
  });
});
