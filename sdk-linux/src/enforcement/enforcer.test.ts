import { create } from "@bufbuild/protobuf";
import {
  type Port,
  PortSchema,
  type RouteTable,
  RouteTableSchema,
  type SecurityGroup,
  SecurityGroupSchema,
  type Subnet,
  SubnetSchema,
} from "@nsm-ts/api/resources";
import { AsyncQueue } from "@nsm-ts/base/queue";
import { expect } from "chai";
import type { IpExecutor, IpLine } from "../executor.js";
import { currentNetns } from "../netns.js";
import type { NftExecutor } from "../nft/executor.js";
import type { NftTable, NftTableRef } from "../nft/table.js";
import { createEnforcer, type Enforcer } from "./enforcer.js";
import type { ResourceChange, ResourceView } from "./view.js";

/** Records in maps, and a change feed the test pushes into (a new one per `watch`). */
class FakeView implements ResourceView {
  ports = new Map<string, Port>();
  groups = new Map<string, SecurityGroup>();
  subnets = new Map<string, Subnet>();
  tables = new Map<string, RouteTable>();
  feeds: AsyncQueue<ResourceChange>[] = [];
  getPort = async (id: string) => this.ports.get(id);
  getSecurityGroup = async (id: string) => this.groups.get(id);
  getSubnet = async (id: string) => this.subnets.get(id);
  getRouteTable = async (id: string) => this.tables.get(id);
  portsInGroup = async (id: string) => [...this.ports.values()].filter((p) => p.securityGroupIds.includes(id));
  watch(signal: AbortSignal) {
    const q = new AsyncQueue<ResourceChange>({ capacity: 1000 });
    signal.addEventListener("abort", () => q.end(), { once: true });
    this.feeds.push(q);
    return { changes: q, ready: Promise.resolve() };
  }
  change(c: ResourceChange): void {
    this.feeds.at(-1)?.push(c);
  }
}

/** The kernel side, recorded: nft tables applied and deleted, ip lines applied; listings are empty. */
class FakeKernel {
  readonly applied: NftTable[] = [];
  readonly deleted: NftTableRef[] = [];
  readonly lines: IpLine[] = [];
  #waiters: Array<{ test: () => boolean; resolve: () => void }> = [];
  #fire(): void {
    const still = [];
    for (const w of this.#waiters) {
      if (w.test()) w.resolve();
      else still.push(w);
    }
    this.#waiters = still;
  }
  /** Resolves once `test` holds (checked after every kernel call). */
  until(test: () => boolean): Promise<void> {
    return test() ? Promise.resolve() : new Promise((resolve) => this.#waiters.push({ test, resolve }));
  }
  readonly nft: NftExecutor = {
    apply: async (_ns, t) => {
      this.applied.push(t);
      this.#fire();
    },
    delete: async (_ns, t) => {
      this.deleted.push(t);
      this.#fire();
    },
    list: async () => [],
    run: async () => undefined,
    query: async () => "",
  };
  readonly ip: IpExecutor = {
    mode: "batch",
    apply: async (_ns, lines) => {
      this.lines.push(...lines);
      this.#fire();
    },
    query: async () => "[]",
  };
  lastRules(chain: string): readonly string[] {
    return this.applied.at(-1)?.chains.find((c) => c.name === chain)?.rules ?? [];
  }
}

describe("enforcement: the enforcer keeps rules in step with the resource records", () => {
  let view: FakeView;
  let kernel: FakeKernel;
  let ctl: AbortController;
  let enforcer: Enforcer;
  let netnsUrl: string;

  const rule = { etherType: "IPv4", portRangeMax: 0, remoteIpPrefix: "" };
  const port = (id: string, ip: string, groups: string[]) =>
    create(PortSchema, { id, fixedIps: [{ subnetId: "s1", ipAddress: ip }], securityGroupIds: groups });

  beforeEach(async () => {
    netnsUrl = (await currentNetns()).url;
    view = new FakeView();
    kernel = new FakeKernel();
    view.groups.set(
      "web",
      create(SecurityGroupSchema, {
        id: "web",
        rules: [{ ...rule, direction: "ingress", protocol: "tcp", portRangeMin: 8080, remoteGroupId: "clients" }],
      }),
    );
    view.groups.set("clients", create(SecurityGroupSchema, { id: "clients", rules: [{ ...rule, direction: "egress" }] }));
    view.ports.set("p1", port("p1", "198.51.100.3", ["web"]));
    view.ports.set("p2", port("p2", "198.51.100.5", ["clients"]));
    view.subnets.set("s1", create(SubnetSchema, { id: "s1", cidr: "198.51.100.0/24", routeTableId: "rt1" }));
    view.tables.set("rt1", create(RouteTableSchema, { id: "rt1", routes: [{ destination: "203.0.113.0/24" }] }));
    ctl = new AbortController();
    enforcer = createEnforcer({ owner: "fwd", view, signal: ctl.signal, nft: kernel.nft, exec: kernel.ip, watchRetryMs: 1 });
    await enforcer.attach({ connectionId: "c1", netnsUrl, ifName: "nsm-1", portId: "p1", peer: ["198.51.100.2/32"], policies: [] });
  });
  afterEach(async () => {
    ctl.abort();
    await enforcer.stopped;
  });

  it("applies the port's groups (remote group members as sources) and the subnet's route table on attach", () => {
    expect(kernel.lastRules("sg_ingress")).to.include("meta nfproto ipv4 ip saddr 198.51.100.5 tcp dport 8080 accept");
    expect(kernel.lines.map((l) => l.args.join(" "))).to.include(
      "route replace 203.0.113.0/24 via 198.51.100.2 dev nsm-1 metric 0 proto 78 onlink",
    );
    expect(enforcer.attached()).to.deep.equal(["c1"]);
  });

  it("re-applies on a change of the group, of its members and of the route table", async () => {
    view.groups.set(
      "web",
      create(SecurityGroupSchema, {
        id: "web",
        rules: [{ ...rule, direction: "ingress", protocol: "tcp", portRangeMin: 22, remoteGroupId: "clients" }],
      }),
    );
    view.change({ kind: "securitygroup", id: "web" });
    await kernel.until(() => kernel.lastRules("sg_ingress").includes("meta nfproto ipv4 ip saddr 198.51.100.5 tcp dport 22 accept"));

    view.ports.set("p3", port("p3", "198.51.100.7", ["clients"])); // joins the remote group
    view.change({ kind: "port", id: "p3", groups: ["clients"] });
    await kernel.until(() =>
      kernel.lastRules("sg_ingress").includes("meta nfproto ipv4 ip saddr { 198.51.100.5, 198.51.100.7 } tcp dport 22 accept"),
    );

    view.tables.set("rt1", create(RouteTableSchema, { id: "rt1", routes: [{ destination: "203.0.113.64/26", priority: 5 }] }));
    view.change({ kind: "routetable", id: "rt1" });
    await kernel.until(() => kernel.lines.some((l) => l.args.join(" ").startsWith("route replace 203.0.113.64/26 via 198.51.100.2")));
  });

  it("re-applies when a member leaves the remote group or changes its address", async () => {
    view.ports.set("p2", port("p2", "198.51.100.5", ["web"])); // leaves "clients": the group is empty now
    view.change({ kind: "port", id: "p2", groups: ["clients", "web"] });
    await kernel.until(() => !kernel.lastRules("sg_ingress").some((r) => r.includes("tcp dport 8080")));

    view.ports.set("p3", port("p3", "198.51.100.7", ["clients"]));
    view.change({ kind: "port", id: "p3", groups: ["clients"] });
    await kernel.until(() => kernel.lastRules("sg_ingress").includes("meta nfproto ipv4 ip saddr 198.51.100.7 tcp dport 8080 accept"));
    // A view that cannot tell the groups (no `groups`): every connection is rendered again.
    view.ports.set("p3", port("p3", "198.51.100.9", ["clients"]));
    view.change({ kind: "port", id: "p3" });
    await kernel.until(() => kernel.lastRules("sg_ingress").includes("meta nfproto ipv4 ip saddr 198.51.100.9 tcp dport 8080 accept"));
  });

  it("ignores changes nothing depends on", async () => {
    const before = kernel.applied.length;
    view.groups.set("other", create(SecurityGroupSchema, { id: "other" }));
    view.change({ kind: "securitygroup", id: "other" });
    view.change({ kind: "subnet", id: "s2" });
    view.ports.set("p9", port("p9", "198.51.100.9", ["other"]));
    view.change({ kind: "port", id: "p9", groups: ["other"] });
    view.groups.set(
      "web",
      create(SecurityGroupSchema, {
        id: "web",
        rules: [{ ...rule, direction: "ingress", protocol: "tcp", portRangeMin: 23, remoteGroupId: "clients" }],
      }),
    );
    view.change({ kind: "securitygroup", id: "web" });
    await kernel.until(() => kernel.lastRules("sg_ingress").some((r) => r.endsWith("tcp dport 23 accept")));
    expect(kernel.applied.length).to.equal(before + 1); // only the change c1 depends on was applied
  });

  it("removes the table, rules and routes on detach, and works without a row (after a restart)", async () => {
    await enforcer.detach("c1");
    expect(kernel.deleted.map((t) => t.name)).to.have.length(1);
    expect(enforcer.attached()).to.deep.equal([]);
    await enforcer.detach("c9", { netnsUrl, ifName: "nsm-9" });
    expect(kernel.deleted).to.have.length(2);
  });

  it("applies policy routes of a connection without a port: a table of its own and a rule, no security-group table", async () => {
    const before = kernel.applied.length;
    await enforcer.attach({
      connectionId: "c2",
      netnsUrl,
      ifName: "nsm-2",
      portId: "",
      peer: ["198.51.100.8/32"],
      policies: [
        { from: "198.51.100.9/32", proto: "udp", dstPort: "53", srcPort: "", routes: [{ prefix: "203.0.113.0/24", nextHop: "" }] },
      ],
    });
    const lines = kernel.lines.map((l) => l.args.join(" "));
    expect(lines.some((l) => /^rule add pref 20000 from 198\.51\.100\.9\/32 ipproto udp dport 53 table \d+ protocol 78$/.test(l))).to.equal(
      true,
    );
    expect(
      lines.some((l) => /^route replace 203\.0\.113\.0\/24 via 198\.51\.100\.8 dev nsm-2 metric 0 table \d+ proto 78 onlink$/.test(l)),
    ).to.equal(true);
    expect(kernel.applied.length).to.equal(before);
  });

  it("re-renders everything after the change feed was reopened", async () => {
    view.groups.set(
      "web",
      create(SecurityGroupSchema, { id: "web", rules: [{ ...rule, direction: "ingress", protocol: "udp", portRangeMin: 53 }] }),
    );
    view.feeds.at(-1)?.end(new Error("registry restarted")); // the change above was never reported
    await kernel.until(() => kernel.lastRules("sg_ingress").includes("meta nfproto ipv4 udp dport 53 accept"));
  });
});
