import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { createServer, type NsmServer } from "@nsm-ts/base/grpc";
import { expect } from "chai";
import { createMemoryResourceStore, registerResourceManagers } from "./index.js";

/** The repo root, found from the compiled test file. */
function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, "api", "proto", "nsmts"))) {
    const up = dirname(dir);
    if (up === dir) throw new Error("resources grpc test: api/proto/nsmts not found");
    dir = up;
  }
  return dir;
}

type Plain = grpc.Client & Record<string, (...args: unknown[]) => unknown>;
type Ctor = new (target: string, creds: grpc.ChannelCredentials) => Plain;
type Obj = Record<string, unknown>;

/** Loads our .proto files with proto-loader (protobufjs): an independent parser and codec. */
function load(): { svc: (name: string) => Ctor; ipam: Ctor } {
  const root = join(repoRoot(), "api", "proto");
  const def = protoLoader.loadSync(["nsmts/resources/v1/resources.proto", "ipam.proto"], {
    includeDirs: [join(root, "nsmts"), join(root, "ipam")],
    keepCase: true,
    longs: String,
    enums: String,
    defaults: true,
  });
  const pkg = grpc.loadPackageDefinition(def) as unknown as { nsmts: { resources: { v1: Record<string, Ctor> } }; ipam: { IPAM: Ctor } };
  return {
    svc: (name) =>
      pkg.nsmts.resources.v1[name] ??
      (() => {
        throw new Error(`no service ${name}`);
      })(),
    ipam: pkg.ipam.IPAM,
  };
}

interface CallError {
  code: number;
  details: string;
}

function unary(c: Plain, method: string, req: Obj): Promise<Obj> {
  return new Promise((resolve, reject) => {
    const fn = c[method];
    if (fn === undefined) throw new Error(`no method ${method}`);
    fn.call(c, req, (err: grpc.ServiceError | null, res: Obj) => (err ? reject(err) : resolve(res)));
  });
}

async function failure(p: Promise<unknown>): Promise<CallError> {
  try {
    await p;
  } catch (err) {
    return err as CallError;
  }
  expect.fail("expected the call to fail");
}

describe("resources: served over gRPC, driven by grpc-js + proto-loader", function () {
  this.timeout(20_000);
  let server: NsmServer;
  let target: string;
  const clients: grpc.Client[] = [];
  const protos = load();
  const client = (name: string): Plain => {
    const c = new (protos.svc(name))(target, grpc.credentials.createInsecure());
    clients.push(c);
    return c;
  };

  beforeEach(async () => {
    server = createServer();
    registerResourceManagers(server, {
      store: createMemoryResourceStore(),
      prefixPool: { prefix: "169.254.0.0/16", prefixLength: 24 },
    });
    target = (await server.listen("tcp://127.0.0.1:0")).replace("tcp://", "");
  });
  afterEach(async () => {
    for (const c of clients.splice(0)) c.close();
    await server.close({ graceMs: 100 });
  });

  it("CRUD, allocation, ports and every error code with the field named", async () => {
    const nets = client("NetworkManager");
    const subnets = client("SubnetManager");
    const ips = client("IpAddressManager");
    const ports = client("PortManager");
    const n = await unary(nets, "CreateNetwork", { id: "n1", cidr: "198.51.100.0/24" });
    expect(n.cidr).to.equal("198.51.100.0/24");
    expect(n.revision).to.match(/^[1-9]\d*$/);
    const s = await unary(subnets, "CreateSubnet", { id: "s1", network_id: "n1", cidr: "198.51.100.0/29" });
    expect(s.gateway_ip).to.equal("198.51.100.1");
    expect(s.ip_version).to.equal(4);
    const ip = await unary(ips, "AllocateIpAddress", { subnet_id: "s1", owner: "conn-1" });
    expect(ip.address).to.equal("198.51.100.2");
    expect(ip.state).to.equal("IP_STATE_ACTIVE");
    const port = await unary(ports, "CreatePort", { id: "p1", network_id: "n1", owner: "nse-1" });
    expect((port.fixed_ips as Obj[])[0]?.ip_address).to.equal("198.51.100.3");
    expect(port.mac_address).to.match(/^fa:16:3e:/);
    const bulk = await unary(ips, "BulkAllocateIpAddresses", { subnet_id: "s1", count: 3 });
    expect((bulk.items as Obj[]).map((i) => i.address)).to.deep.equal(["198.51.100.4", "198.51.100.5", "198.51.100.6"]);

    let err = await failure(unary(ips, "AllocateIpAddress", { subnet_id: "s1" }));
    expect(err.code).to.equal(grpc.status.RESOURCE_EXHAUSTED);
    expect(err.details).to.match(/subnet_id: subnet "s1"/);
    err = await failure(unary(ips, "AllocateIpAddress", { subnet_id: "s1", address: "203.0.113.5" }));
    expect(err.code).to.equal(grpc.status.INVALID_ARGUMENT);
    expect(err.details).to.match(/address: 203\.0\.113\.5 is outside subnet "s1"/);
    err = await failure(unary(subnets, "CreateSubnet", { id: "s2", network_id: "n1", cidr: "198.51.100.300/24" }));
    expect(err.code).to.equal(grpc.status.INVALID_ARGUMENT);
    expect(err.details).to.match(/cidr: /);
    const updated = await unary(nets, "UpdateNetwork", { id: "n1", name: "blue", revision: n.revision });
    expect(updated.name).to.equal("blue");
    err = await failure(unary(nets, "UpdateNetwork", { id: "n1", name: "x", revision: n.revision }));
    expect(err.code).to.equal(grpc.status.ABORTED);
    expect(err.details).to.match(/revision: /);
    err = await failure(unary(nets, "DeleteNetwork", { id: "n1" }));
    expect(err.code).to.equal(grpc.status.FAILED_PRECONDITION);
    expect(err.details).to.match(/id: network "n1" is still referenced/);
    err = await failure(unary(ports, "GetPort", { id: "nope" }));
    expect(err.code).to.equal(grpc.status.NOT_FOUND);

    await unary(ports, "DeletePort", { id: "p1" });
    const page1 = await unary(ips, "ListIpAddresses", { subnet_id: "s1", page_size: 2 });
    expect((page1.items as Obj[]).map((i) => i.address)).to.deep.equal(["198.51.100.2", "198.51.100.4"]);
    const page2 = await unary(ips, "ListIpAddresses", { subnet_id: "s1", page_size: 2, page_token: page1.next_page_token });
    expect((page2.items as Obj[]).map((i) => i.address)).to.deep.equal(["198.51.100.5", "198.51.100.6"]);
    const page3 = await unary(ips, "ListIpAddresses", { subnet_id: "s1", page_size: 2, page_token: page2.next_page_token });
    expect(page3.items).to.deep.equal([]);
    expect(page3.next_page_token).to.equal("");
  });

  it("security groups, route tables, MACs and bulk calls over the wire", async () => {
    const nets = client("NetworkManager");
    const sgs = client("SecurityGroupManager");
    const rts = client("RouteTableManager");
    const macs = client("MacAddressManager");
    const subnets = client("SubnetManager");
    const bulk = await unary(nets, "BulkCreateNetworks", { items: [{ id: "a", cidr: "fd00:a::/48" }, { id: "b" }] });
    expect((bulk.items as Obj[]).map((n) => n.id)).to.deep.equal(["a", "b"]);
    const sg = await unary(sgs, "CreateSecurityGroup", {
      id: "web",
      rules: [{ protocol: "tcp", port_range_min: 443, port_range_max: 443, remote_ip_prefix: "203.0.113.0/24" }],
    });
    const rule = (sg.rules as Obj[])[0] ?? {};
    expect(rule.direction).to.equal("ingress");
    expect(rule.ether_type).to.equal("IPv4");
    expect(rule.id).to.match(/^[0-9a-f-]{36}$/);
    const rt = await unary(rts, "CreateRouteTable", {
      id: "rt",
      network_id: "a",
      routes: [{ destination: "fd00:b::/48", next_hop: "fd00:a::1" }],
    });
    expect((rt.routes as Obj[])[0]?.next_hop).to.equal("fd00:a::1");
    let err = await failure(
      unary(rts, "CreateRouteTable", { id: "rt2", routes: [{ destination: "fd00:b::/48", next_hop: "198.51.100.1" }] }),
    );
    expect(err.code).to.equal(grpc.status.INVALID_ARGUMENT);
    expect(err.details).to.match(/routes\[0\]\.next_hop/);
    const s6 = await unary(subnets, "CreateSubnet", { id: "s6", network_id: "a", cidr: "fd00:a:0:1::/64", route_table_id: "rt" });
    expect(s6.ip_version).to.equal(6);
    expect(s6.gateway_ip).to.equal("fd00:a:0:1::1");
    err = await failure(unary(rts, "DeleteRouteTable", { id: "rt" }));
    expect(err.code).to.equal(grpc.status.FAILED_PRECONDITION);
    const m = await unary(macs, "BulkAllocateMacAddresses", { count: 3, owner: "x" });
    expect((m.items as Obj[]).length).to.equal(3);
    const listed = await unary(macs, "ListMacAddresses", { owner: "x" });
    expect((listed.items as Obj[]).length).to.equal(3);
    await unary(macs, "BulkReleaseMacAddresses", { refs: (m.items as Obj[]).map((i) => ({ address: i.address })) });
    expect((await unary(macs, "ListMacAddresses", {})).items).to.deep.equal([]);
    err = await failure(unary(nets, "BulkDeleteNetworks", { refs: [{ id: "b" }, { id: "a" }] }));
    expect(err.code).to.equal(grpc.status.FAILED_PRECONDITION);
    expect((await unary(nets, "ListNetworks", {})).items).to.have.length(2);
    await unary(nets, "BulkDeleteNetworks", { refs: [{ id: "b" }] });
    expect(((await unary(nets, "ListNetworks", {})).items as Obj[]).map((n) => n.id)).to.deep.equal(["a"]);
  });

  it("ManagePrefixes: allocate, delete on the same stream, everything back when the stream ends, UNDEFINED fails", async () => {
    const ipam = new protos.ipam(target, grpc.credentials.createInsecure());
    clients.push(ipam);
    const open = (): { call: grpc.ClientDuplexStream<Obj, Obj>; next: () => Promise<Obj>; ended: Promise<grpc.StatusObject> } => {
      const call = (ipam.ManagePrefixes as () => grpc.ClientDuplexStream<Obj, Obj>).call(ipam);
      const queue: Obj[] = [];
      const waiters: Array<(m: Obj) => void> = [];
      call.on("data", (m: Obj) => {
        const w = waiters.shift();
        if (w) w(m);
        else queue.push(m);
      });
      call.on("error", () => undefined);
      const ended = new Promise<grpc.StatusObject>((resolve) => call.on("status", resolve));
      return {
        call,
        next: () => new Promise<Obj>((resolve) => (queue.length > 0 ? resolve(queue.shift() as Obj) : waiters.push(resolve))),
        ended,
      };
    };

    const one = open();
    one.call.write({ type: "ALLOCATE", prefix: "", exclude_prefixes: ["169.254.0.0/24"] });
    const first = await one.next();
    expect(first.prefix).to.equal("169.254.1.0/24");
    expect(first.exclude_prefixes).to.deep.equal(["169.254.0.0/24"]);
    one.call.write({ type: "ALLOCATE", prefix: "169.254.9.0/24" });
    expect((await one.next()).prefix).to.equal("169.254.9.0/24");
    one.call.write({ type: "DELETE", prefix: "169.254.1.0/24" });
    one.call.write({ type: "ALLOCATE", prefix: "" });
    expect((await one.next()).prefix).to.equal("169.254.0.0/24"); // the exclusion was per request
    one.call.write({ type: "ALLOCATE", prefix: "" });
    expect((await one.next()).prefix).to.equal("169.254.1.0/24"); // freed by DELETE

    const two = open();
    two.call.write({ type: "ALLOCATE", prefix: "169.254.9.0/24" });
    expect((await two.next()).prefix).to.equal("169.254.2.0/24"); // 9 is held by stream one

    one.call.end();
    expect((await one.ended).code).to.equal(grpc.status.OK);
    two.call.write({ type: "ALLOCATE", prefix: "169.254.9.0/24" });
    expect((await two.next()).prefix).to.equal("169.254.9.0/24"); // released when stream one ended
    two.call.write({ type: "UNDEFINED" });
    const st = await two.ended;
    expect(st.code).to.equal(grpc.status.INVALID_ARGUMENT);
    expect(st.details).to.match(/type/);
  });
});
