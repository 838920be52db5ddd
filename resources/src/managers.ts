/**
 * The resource managers (after Alcor): networks, subnets, IP and MAC addresses, ports, security groups and
 * route tables over one `ResourceStore`. Every write is a store commit with compare-on-revision; deletes of
 * referenced records fail with FailedPrecondition; addresses come from per-subnet and per-OUI bitmaps; a port
 * is created in steps (addresses, MAC, record), each undone in reverse order when a later one fails.
 */
import { randomUUID } from "node:crypto";
import { create, type Message } from "@bufbuild/protobuf";
import {
  type AllocateIpAddressRequest,
  type AllocateMacAddressRequest,
  type BulkAllocateIpAddressesRequest,
  type BulkAllocateMacAddressesRequest,
  type IpAddress,
  type IpAddressRef,
  IpAddressSchema,
  IpState,
  type ListRequest,
  type MacAddress,
  type MacAddressRef,
  MacAddressSchema,
  type Network,
  NetworkSchema,
  type Port,
  PortSchema,
  type ResourceRef,
  type RouteTable,
  RouteTableSchema,
  type SecurityGroup,
  SecurityGroupSchema,
  type Subnet,
  SubnetSchema,
} from "@nsm-ts/api/resources";
import { type Logger, silentLogger } from "@nsm-ts/base/log";
import { Code, fail, isStatusError, StatusError } from "@nsm-ts/base/status";
import {
  cidrContains,
  cidrCovers,
  cidrOverlaps,
  formatCidr,
  formatIp,
  formatMac,
  parseIp,
  requireCidr,
  requireIp,
  requireMac,
  requireOui,
} from "./address.js";
import { KeyedMutex, MacAllocator, SubnetAllocator } from "./allocator.js";
import { createMemoryResourceStore } from "./memory-store.js";
import { describeRecord, type RecordRef, type ResourceKind, type ResourceStore, type StoredRecord, type StoreOp } from "./store.js";

/** Default OUI of random MACs (the one OpenStack uses for its ports). */
export const DEFAULT_MAC_OUI = "fa:16:3e";
/** Page size of List calls that ask for none. */
export const DEFAULT_PAGE_SIZE = 100;
/** Largest page size of List calls; larger requests get pages of this size. */
export const MAX_PAGE_SIZE = 1000;
/** Most addresses one bulk allocation may ask for. */
export const MAX_BULK = 10_000;

/** Options of `createResourceManagers`. */
export interface ResourceManagersOptions {
  /** Where records live; default a new memory store. */
  store?: ResourceStore;
  /** OUI of random MACs; default `fa:16:3e`. */
  macOui?: string;
  /** Where rollbacks that fail are logged; default silent. */
  log?: Logger;
}

type WithRevision = Message & { revision: string };

const ipId = (subnetId: string, address: string): string => `${subnetId}/${address}`;
const withRevision = <T extends WithRevision>(rec: StoredRecord): T => ({ ...(rec.value as T), revision: rec.revision });
const need = (value: string, field: string): string => value || fail(Code.InvalidArgument, `resources: ${field}: required`);

/** The managers; `registerResourceManagers` serves them over gRPC, tests and programs may call them directly. */
export class ResourceManagers {
  /** The store the managers write to. */
  readonly store: ResourceStore;
  private readonly log: Logger;
  private readonly defaultOui: bigint;
  private readonly locks = new KeyedMutex();
  private readonly subnets = new Map<string, SubnetAllocator>();
  private readonly macs = new Map<bigint, MacAllocator>();
  /** Allocations a shared store refused because another writer held the address; each cost one retry. */
  conflicts = 0;
  /** Started once per kind on shared stores: other replicas' allocations and releases reach the bitmaps. */
  private readonly feeds = new Map<ResourceKind, Promise<void>>();

  constructor(opts: ResourceManagersOptions = {}) {
    this.store = opts.store ?? createMemoryResourceStore();
    this.log = opts.log ?? silentLogger;
    this.defaultOui = requireOui(opts.macOui ?? DEFAULT_MAC_OUI, "macOui");
  }

  // ---------------------------------------------------------------- networks

  /** Creates a network (id generated when empty). */
  async createNetwork(n: Network): Promise<Network> {
    const [op] = this.networkOp(n);
    return this.commitOne<Network>(op);
  }

  /** Creates several networks, all or none. */
  async bulkCreateNetworks(items: readonly Network[]): Promise<Network[]> {
    return this.commitMany<Network>(items.map((n, i) => this.networkOp(n, `items[${i}].`)[0]));
  }

  /** Renames a network; its CIDR cannot change. */
  async updateNetwork(n: Network): Promise<Network> {
    const cur = await this.getRecord<Network>("network", n.id);
    const cidr = n.cidr === "" ? cur.cidr : formatCidrOf(n.cidr, "cidr");
    if (cidr !== cur.cidr) fail(Code.InvalidArgument, `resources: cidr: the CIDR of network "${n.id}" cannot change`);
    const value = create(NetworkSchema, { id: cur.id, name: n.name, cidr });
    return this.commitOne<Network>({ type: "update", kind: "network", id: cur.id, value, refs: [], revision: n.revision });
  }

  private networkOp(n: Network, at = ""): [StoreOp] {
    const id = n.id || randomUUID();
    const cidr = n.cidr === "" ? "" : formatCidrOf(n.cidr, `${at}cidr`);
    return [{ type: "create", kind: "network", id, value: create(NetworkSchema, { id, name: n.name, cidr }), refs: [] }];
  }

  // ---------------------------------------------------------------- subnets

  /** Creates a subnet of a network: CIDR inside the network's, not overlapping its other subnets. */
  async createSubnet(s: Subnet): Promise<Subnet> {
    return this.commitOne<Subnet>(await this.subnetOp(s));
  }

  /** Creates several subnets, all or none. */
  async bulkCreateSubnets(items: readonly Subnet[]): Promise<Subnet[]> {
    const ops: StoreOp[] = [];
    for (const [i, s] of items.entries()) ops.push(await this.subnetOp(s, `items[${i}].`));
    return this.commitMany<Subnet>(ops);
  }

  /** Changes a subnet's name and route table; CIDR, gateway, pools and network cannot change. */
  async updateSubnet(s: Subnet): Promise<Subnet> {
    const cur = await this.getRecord<Subnet>("subnet", s.id);
    const same = (field: string, a: string, b: string): void => {
      if (a !== "" && a !== b) fail(Code.InvalidArgument, `resources: ${field}: the ${field} of subnet "${s.id}" cannot change`);
    };
    same("network_id", s.networkId, cur.networkId);
    same("cidr", s.cidr === "" ? "" : formatCidrOf(s.cidr, "cidr"), cur.cidr);
    same("gateway_ip", s.gatewayIp === "" ? "" : formatIp(requireIp(s.gatewayIp, "gateway_ip")), cur.gatewayIp);
    if (
      s.allocationPools.length > 0 &&
      JSON.stringify(s.allocationPools.map((p) => [p.start, p.end])) !== JSON.stringify(cur.allocationPools.map((p) => [p.start, p.end]))
    ) {
      fail(Code.InvalidArgument, `resources: allocation_pools: the allocation_pools of subnet "${s.id}" cannot change`);
    }
    if (s.routeTableId !== "") await this.requireExists("routetable", s.routeTableId, "route_table_id");
    const value = create(SubnetSchema, { ...cur, name: s.name, routeTableId: s.routeTableId, revision: "" });
    return this.commitOne<Subnet>({ type: "update", kind: "subnet", id: cur.id, value, refs: subnetRefs(value), revision: s.revision });
  }

  private async subnetOp(s: Subnet, at = ""): Promise<StoreOp> {
    const id = s.id || randomUUID();
    const networkId = need(s.networkId, `${at}network_id`);
    const cidr = requireCidr(need(s.cidr, `${at}cidr`), `${at}cidr`);
    const network = await this.getRecord<Network>("network", networkId, `${at}network_id`);
    if (network.cidr !== "" && !cidrCovers(requireCidr(network.cidr, "network.cidr"), cidr)) {
      fail(Code.InvalidArgument, `resources: ${at}cidr: ${formatCidr(cidr)} is outside network "${networkId}" (${network.cidr})`);
    }
    const siblings = await this.store.list("subnet", { filter: (r) => (r.value as Subnet).networkId === networkId });
    for (const sib of siblings) {
      const other = sib.value as Subnet;
      if (cidrOverlaps(requireCidr(other.cidr, "cidr"), cidr)) {
        fail(
          Code.InvalidArgument,
          `resources: ${at}cidr: ${formatCidr(cidr)} overlaps subnet "${other.id}" (${other.cidr}) of network "${networkId}"`,
        );
      }
    }
    let gateway = "";
    if (s.gatewayIp !== "") {
      const g = requireIp(s.gatewayIp, `${at}gateway_ip`);
      if (!cidrContains(cidr, g))
        fail(Code.InvalidArgument, `resources: ${at}gateway_ip: ${s.gatewayIp} is outside the subnet ${formatCidr(cidr)}`);
      gateway = formatIp(g);
    } else if (cidr.size >= 4n) {
      gateway = formatIp({ family: cidr.family, value: cidr.base + 1n });
    }
    const pools = s.allocationPools.map((p, i) => {
      const f = `${at}allocation_pools[${i}]`;
      const start = requireIp(p.start, `${f}.start`);
      const end = requireIp(p.end, `${f}.end`);
      if (!cidrContains(cidr, start))
        fail(Code.InvalidArgument, `resources: ${f}.start: ${p.start} is outside the subnet ${formatCidr(cidr)}`);
      if (!cidrContains(cidr, end)) fail(Code.InvalidArgument, `resources: ${f}.end: ${p.end} is outside the subnet ${formatCidr(cidr)}`);
      if (end.value < start.value) fail(Code.InvalidArgument, `resources: ${f}.end: ${p.end} is below start ${p.start}`);
      return { start: formatIp(start), end: formatIp(end) };
    });
    if (s.routeTableId !== "") await this.requireExists("routetable", s.routeTableId, `${at}route_table_id`);
    const value = create(SubnetSchema, {
      id,
      name: s.name,
      networkId,
      cidr: formatCidr(cidr),
      gatewayIp: gateway,
      allocationPools: pools,
      ipVersion: cidr.family,
      routeTableId: s.routeTableId,
    });
    return { type: "create", kind: "subnet", id, value, refs: subnetRefs(value) };
  }

  // ---------------------------------------------------------------- IP addresses

  /** Allocates the given address, or the next free one (lowest for IPv4 and small pools, random for IPv6). */
  async allocateIpAddress(req: AllocateIpAddressRequest): Promise<IpAddress> {
    return this.allocateIp(req.subnetId, req.address, req.owner, req.state, { subnet: "subnet_id", address: "address" });
  }

  /** Allocates `count` addresses from one subnet, all or none. */
  async bulkAllocateIpAddresses(req: BulkAllocateIpAddressesRequest): Promise<IpAddress[]> {
    const subnetId = need(req.subnetId, "subnet_id");
    if (req.count < 1 || req.count > MAX_BULK) fail(Code.InvalidArgument, `resources: count: must be 1..${MAX_BULK}, got ${req.count}`);
    for (let attempt = 0; ; attempt++) {
      const alloc = await this.subnetAllocator(subnetId, "subnet_id");
      const taken: bigint[] = [];
      for (let i = 0; i < req.count; i++) {
        const v = alloc.take(!this.store.exclusive);
        if (v === undefined) break;
        taken.push(v);
      }
      if (taken.length < req.count) {
        for (const v of taken) alloc.clear(v);
        if (!this.store.exclusive && attempt === 0) {
          await this.resyncSubnet(subnetId);
          continue;
        }
        fail(
          Code.ResourceExhausted,
          `resources: subnet_id: subnet "${subnetId}" (${formatCidr(alloc.cidr)}) has ${alloc.free} free addresses, ${req.count} requested`,
        );
      }
      const ops: StoreOp[] = taken.map((v) =>
        this.ipCreateOp(subnetId, formatIp({ family: alloc.cidr.family, value: v }), req.owner, IpState.ACTIVE),
      );
      try {
        return await this.commitMany<IpAddress>(ops);
      } catch (err) {
        // Another replica may hold some of them: keep their bits only when retrying after a conflict.
        for (const v of taken) alloc.clear(v);
        if (this.store.exclusive || !isStatusError(err, Code.AlreadyExists) || attempt >= 3) throw err;
        await this.resyncSubnet(subnetId);
      }
    }
  }

  /** Reads one address. */
  async getIpAddress(ref: IpAddressRef): Promise<IpAddress> {
    const address = canonicalIp(ref.address, "address");
    return this.getRecord<IpAddress>("ip", ipId(need(ref.subnetId, "subnet_id"), address), "address");
  }

  /** Changes an address's state and owner. */
  async updateIpAddress(ip: IpAddress): Promise<IpAddress> {
    const cur = await this.getIpAddress({ ...ip, $typeName: "nsmts.resources.v1.IpAddressRef" });
    const value = create(IpAddressSchema, {
      subnetId: cur.subnetId,
      address: cur.address,
      owner: ip.owner,
      state: ip.state === IpState.UNSPECIFIED ? cur.state : ip.state,
    });
    return this.commitOne<IpAddress>({
      type: "update",
      kind: "ip",
      id: ipId(cur.subnetId, cur.address),
      value,
      refs: [{ kind: "subnet", id: cur.subnetId }],
      revision: ip.revision,
    });
  }

  /** Releases one address (FailedPrecondition while a port holds it). */
  async releaseIpAddress(ref: IpAddressRef): Promise<void> {
    await this.bulkReleaseIpAddresses([ref]);
  }

  /** Releases several addresses, all or none. */
  async bulkReleaseIpAddresses(refs: readonly IpAddressRef[]): Promise<void> {
    const ips = refs.map((r, i) => ({
      subnetId: need(r.subnetId, `refs[${i}].subnet_id`),
      address: canonicalIp(r.address, `refs[${i}].address`),
      revision: r.revision,
    }));
    await this.commitChunked(ips.map((r) => ({ type: "delete", kind: "ip", id: ipId(r.subnetId, r.address), revision: r.revision })));
    for (const r of ips) this.forgetIp(r.subnetId, r.address);
  }

  // ---------------------------------------------------------------- MAC addresses

  /** Allocates the given MAC, or a random one under the OUI. */
  async allocateMacAddress(req: AllocateMacAddressRequest): Promise<MacAddress> {
    return this.allocateMac(req.address, req.oui, req.owner, "address");
  }

  /** Allocates `count` random MACs, all or none. */
  async bulkAllocateMacAddresses(req: BulkAllocateMacAddressesRequest): Promise<MacAddress[]> {
    if (req.count < 1 || req.count > MAX_BULK) fail(Code.InvalidArgument, `resources: count: must be 1..${MAX_BULK}, got ${req.count}`);
    const alloc = await this.macAllocator(req.oui === "" ? this.defaultOui : requireOui(req.oui, "oui"));
    const taken: bigint[] = [];
    for (let i = 0; i < req.count; i++) {
      const v = alloc.take() ?? fail(Code.ResourceExhausted, "resources: oui: no free MAC under the OUI");
      taken.push(v);
    }
    try {
      return await this.commitMany<MacAddress>(
        taken.map((v) => ({
          type: "create",
          kind: "mac",
          id: formatMac(v),
          value: create(MacAddressSchema, { address: formatMac(v), owner: req.owner }),
          refs: [],
        })),
      );
    } catch (err) {
      for (const v of taken) alloc.clear(v);
      throw err;
    }
  }

  /** Reads one MAC. */
  async getMacAddress(ref: MacAddressRef): Promise<MacAddress> {
    return this.getRecord<MacAddress>("mac", formatMac(requireMac(ref.address, "address")), "address");
  }

  /** Changes a MAC's owner. */
  async updateMacAddress(m: MacAddress): Promise<MacAddress> {
    const address = formatMac(requireMac(m.address, "address"));
    return this.commitOne<MacAddress>({
      type: "update",
      kind: "mac",
      id: address,
      value: create(MacAddressSchema, { address, owner: m.owner }),
      refs: [],
      revision: m.revision,
    });
  }

  /** Releases one MAC (FailedPrecondition while a port holds it). */
  async releaseMacAddress(ref: MacAddressRef): Promise<void> {
    await this.bulkReleaseMacAddresses([ref]);
  }

  /** Releases several MACs, all or none. */
  async bulkReleaseMacAddresses(refs: readonly MacAddressRef[]): Promise<void> {
    const macs = refs.map((r, i) => ({ v: requireMac(r.address, `refs[${i}].address`), revision: r.revision }));
    await this.commitChunked(macs.map((m) => ({ type: "delete", kind: "mac", id: formatMac(m.v), revision: m.revision })));
    for (const m of macs) this.macs.get(m.v >> 24n)?.clear(m.v);
  }

  // ---------------------------------------------------------------- ports

  /**
   * Creates a port in steps: each fixed IP (any free one when `ip_address` is empty; by default one from the
   * network's first subnet), then the MAC, then the record. A failing step undoes every earlier one.
   */
  async createPort(p: Port, at = ""): Promise<Port> {
    const id = p.id || randomUUID();
    const networkId = need(p.networkId, `${at}network_id`);
    await this.requireExists("network", networkId, `${at}network_id`);
    for (const [i, sg] of p.securityGroupIds.entries()) await this.requireExists("securitygroup", sg, `${at}security_group_ids[${i}]`);
    let fixed = p.fixedIps.map((f) => ({ subnetId: f.subnetId, ipAddress: f.ipAddress }));
    if (fixed.length === 0) {
      const first = (await this.store.list("subnet", { filter: (r) => (r.value as Subnet).networkId === networkId, limit: 1 }))[0];
      if (first !== undefined) fixed = [{ subnetId: first.id, ipAddress: "" }];
    }
    for (const [i, f] of fixed.entries()) {
      const field = `${at}fixed_ips[${i}].subnet_id`;
      const subnet = await this.getRecord<Subnet>("subnet", need(f.subnetId, field), field);
      if (subnet.networkId !== networkId)
        fail(Code.InvalidArgument, `resources: ${field}: subnet "${subnet.id}" is in network "${subnet.networkId}", not "${networkId}"`);
    }
    if ((await this.store.get("port", id)) !== undefined) fail(Code.AlreadyExists, `resources: ${at}id: port "${id}" already exists`);

    const undo: Array<{ what: string; run: () => Promise<void> }> = [];
    try {
      const ips: IpAddress[] = [];
      for (const [i, f] of fixed.entries()) {
        const ip = await this.allocateIp(f.subnetId, f.ipAddress, id, IpState.ACTIVE, {
          subnet: `${at}fixed_ips[${i}].subnet_id`,
          address: `${at}fixed_ips[${i}].ip_address`,
        });
        ips.push(ip);
        undo.push({
          what: `ip ${ip.address}`,
          run: () => this.releaseIpAddress({ ...ip, $typeName: "nsmts.resources.v1.IpAddressRef", revision: "" }),
        });
      }
      const mac = await this.allocateMac(p.macAddress, "", id, `${at}mac_address`);
      undo.push({
        what: `mac ${mac.address}`,
        run: () => this.releaseMacAddress({ address: mac.address, revision: "", $typeName: "nsmts.resources.v1.MacAddressRef" }),
      });
      const value = create(PortSchema, {
        id,
        name: p.name,
        networkId,
        fixedIps: ips.map((ip) => ({ subnetId: ip.subnetId, ipAddress: ip.address })),
        macAddress: mac.address,
        owner: p.owner,
        securityGroupIds: p.securityGroupIds,
      });
      return await this.commitOne<Port>({ type: "create", kind: "port", id, value, refs: portRefs(value) });
    } catch (err) {
      for (const step of undo.reverse()) {
        try {
          await step.run();
        } catch (e) {
          this.log.error({ err: e, port: id, step: step.what }, "resources: port rollback step failed; the record stays behind");
        }
      }
      throw err;
    }
  }

  /** Creates several ports; when one fails, the ones already created are deleted again. */
  async bulkCreatePorts(items: readonly Port[]): Promise<Port[]> {
    const done: Port[] = [];
    try {
      for (const [i, p] of items.entries()) done.push(await this.createPort(p, `items[${i}].`));
      return done;
    } catch (err) {
      for (const p of done.reverse()) {
        await this.deletePorts([{ id: p.id, revision: "" }]).catch((e: unknown) =>
          this.log.error({ err: e, port: p.id }, "resources: bulk port rollback failed"),
        );
      }
      throw err;
    }
  }

  /** Changes a port's name, owner and security groups; its addresses and MAC stay. */
  async updatePort(p: Port): Promise<Port> {
    const cur = await this.getRecord<Port>("port", need(p.id, "id"));
    for (const [i, sg] of p.securityGroupIds.entries()) await this.requireExists("securitygroup", sg, `security_group_ids[${i}]`);
    const value = create(PortSchema, { ...cur, name: p.name, owner: p.owner, securityGroupIds: p.securityGroupIds, revision: "" });
    return this.commitOne<Port>({ type: "update", kind: "port", id: cur.id, value, refs: portRefs(value), revision: p.revision });
  }

  /** Deletes ports together with their addresses and MACs, in one commit per port. */
  async deletePorts(refs: ReadonlyArray<{ id: string; revision: string }>): Promise<void> {
    const ops: StoreOp[] = [];
    const ports: Port[] = [];
    for (const [i, r] of refs.entries()) {
      const port = await this.getRecord<Port>("port", need(r.id, refs.length > 1 ? `refs[${i}].id` : "id"));
      ports.push(port);
      ops.push({ type: "delete", kind: "port", id: port.id, revision: r.revision });
      for (const f of port.fixedIps) ops.push({ type: "delete", kind: "ip", id: ipId(f.subnetId, f.ipAddress) });
      if (port.macAddress !== "") ops.push({ type: "delete", kind: "mac", id: port.macAddress });
    }
    await this.commitChunked(ops);
    for (const port of ports) {
      for (const f of port.fixedIps) this.forgetIp(f.subnetId, f.ipAddress);
      const mac = requireMac(port.macAddress, "mac_address");
      this.macs.get(mac >> 24n)?.clear(mac);
    }
  }

  // ---------------------------------------------------------------- security groups and route tables

  /** Creates a security group (rule ids generated when empty). */
  async createSecurityGroup(g: SecurityGroup): Promise<SecurityGroup> {
    return this.commitOne<SecurityGroup>(this.securityGroupOp(g, "create"));
  }

  /** Creates several security groups, all or none. */
  async bulkCreateSecurityGroups(items: readonly SecurityGroup[]): Promise<SecurityGroup[]> {
    return this.commitMany<SecurityGroup>(items.map((g, i) => this.securityGroupOp(g, "create", `items[${i}].`)));
  }

  /** Replaces a security group's name and rules. */
  async updateSecurityGroup(g: SecurityGroup): Promise<SecurityGroup> {
    await this.getRecord<SecurityGroup>("securitygroup", need(g.id, "id"));
    return this.commitOne<SecurityGroup>(this.securityGroupOp(g, "update"));
  }

  private securityGroupOp(g: SecurityGroup, type: "create" | "update", at = ""): StoreOp {
    const id = g.id || randomUUID();
    const rules = g.rules.map((r, i) => {
      const f = `${at}rules[${i}]`;
      const direction = r.direction === "" ? "ingress" : r.direction.toLowerCase();
      if (direction !== "ingress" && direction !== "egress")
        fail(Code.InvalidArgument, `resources: ${f}.direction: "${r.direction}" is neither ingress nor egress`);
      const etherType = r.etherType === "" ? "IPv4" : r.etherType;
      if (etherType !== "IPv4" && etherType !== "IPv6")
        fail(Code.InvalidArgument, `resources: ${f}.ether_type: "${r.etherType}" is neither IPv4 nor IPv6`);
      if (r.portRangeMax > 65535 || r.portRangeMin > r.portRangeMax) {
        fail(Code.InvalidArgument, `resources: ${f}.port_range_max: ${r.portRangeMin}..${r.portRangeMax} is not a port range`);
      }
      let remote = "";
      if (r.remoteIpPrefix !== "") {
        const c = requireCidr(r.remoteIpPrefix, `${f}.remote_ip_prefix`);
        if ((c.family === 4) !== (etherType === "IPv4"))
          fail(Code.InvalidArgument, `resources: ${f}.remote_ip_prefix: ${r.remoteIpPrefix} is not ${etherType}`);
        remote = formatCidr(c);
      }
      return { ...r, id: r.id || randomUUID(), direction, etherType, remoteIpPrefix: remote };
    });
    const value = create(SecurityGroupSchema, { id, name: g.name, rules });
    return type === "create"
      ? { type, kind: "securitygroup", id, value, refs: [] }
      : { type, kind: "securitygroup", id, value, refs: [], revision: g.revision };
  }

  /** Creates a route table. */
  async createRouteTable(t: RouteTable): Promise<RouteTable> {
    return this.commitOne<RouteTable>(await this.routeTableOp(t, "create"));
  }

  /** Creates several route tables, all or none. */
  async bulkCreateRouteTables(items: readonly RouteTable[]): Promise<RouteTable[]> {
    const ops: StoreOp[] = [];
    for (const [i, t] of items.entries()) ops.push(await this.routeTableOp(t, "create", `items[${i}].`));
    return this.commitMany<RouteTable>(ops);
  }

  /** Replaces a route table's name and routes. */
  async updateRouteTable(t: RouteTable): Promise<RouteTable> {
    await this.getRecord<RouteTable>("routetable", need(t.id, "id"));
    return this.commitOne<RouteTable>(await this.routeTableOp(t, "update"));
  }

  private async routeTableOp(t: RouteTable, type: "create" | "update", at = ""): Promise<StoreOp> {
    const id = t.id || randomUUID();
    if (t.networkId !== "") await this.requireExists("network", t.networkId, `${at}network_id`);
    const routes = t.routes.map((r, i) => {
      const f = `${at}routes[${i}]`;
      const dst = requireCidr(need(r.destination, `${f}.destination`), `${f}.destination`);
      let nextHop = "";
      if (r.nextHop !== "") {
        const nh = requireIp(r.nextHop, `${f}.next_hop`);
        if (nh.family !== dst.family)
          fail(Code.InvalidArgument, `resources: ${f}.next_hop: ${r.nextHop} is not of the destination's family`);
        nextHop = formatIp(nh);
      }
      return { destination: formatCidr(dst), nextHop, priority: r.priority };
    });
    const value = create(RouteTableSchema, { id, name: t.name, networkId: t.networkId, routes });
    const refs: RecordRef[] = t.networkId === "" ? [] : [{ kind: "network", id: t.networkId }];
    return type === "create"
      ? { type, kind: "routetable", id, value, refs }
      : { type, kind: "routetable", id, value, refs, revision: t.revision };
  }

  // ---------------------------------------------------------------- generic get/delete/list

  /** Reads one record of a kind (NotFound names `field`). */
  async get<T extends WithRevision>(kind: ResourceKind, ref: ResourceRef): Promise<T> {
    return this.getRecord<T>(kind, need(ref.id, "id"));
  }

  /** Deletes records of a kind, all or none (ports also release their addresses and MACs). */
  async delete(kind: ResourceKind, refs: readonly ResourceRef[]): Promise<void> {
    if (kind === "port") return this.deletePorts(refs);
    const ops: StoreOp[] = refs.map((r, i) => ({
      type: "delete",
      kind,
      id: need(r.id, refs.length > 1 ? `refs[${i}].id` : "id"),
      revision: r.revision,
    }));
    await this.commitChunked(ops);
    if (kind === "subnet") for (const r of refs) this.subnets.delete(r.id);
  }

  /** One page of a kind in id order, filtered by the request's fields that apply to it. */
  async list<T extends WithRevision>(kind: ResourceKind, req: ListRequest): Promise<{ items: T[]; nextPageToken: string }> {
    if (req.pageSize < 0) fail(Code.InvalidArgument, `resources: page_size: ${req.pageSize} is negative`);
    const size = Math.min(req.pageSize || DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE);
    let after: string | undefined;
    if (req.pageToken !== "") {
      after = Buffer.from(req.pageToken, "base64url").toString();
      if (!after.startsWith(`${kind}:`)) fail(Code.InvalidArgument, `resources: page_token: not a token of a ${kind} list`);
      after = after.slice(kind.length + 1);
    }
    const match = listFilter(kind, req);
    const recs = await this.store.list(kind, {
      ...(kind === "ip" && req.subnetId !== "" ? { prefix: `${req.subnetId}/` } : {}),
      ...(after === undefined ? {} : { after }),
      limit: size,
      filter: (r) => match(r.value),
    });
    const last = recs[recs.length - 1];
    return {
      items: recs.map((r) => withRevision<T>(r)),
      nextPageToken: recs.length === size && last !== undefined ? Buffer.from(`${kind}:${last.id}`).toString("base64url") : "",
    };
  }

  // ---------------------------------------------------------------- internals

  private ipCreateOp(subnetId: string, address: string, owner: string, state: IpState): StoreOp {
    const value = create(IpAddressSchema, { subnetId, address, owner, state: state === IpState.UNSPECIFIED ? IpState.ACTIVE : state });
    return { type: "create", kind: "ip", id: ipId(subnetId, address), value, refs: [{ kind: "subnet", id: subnetId }] };
  }

  private async allocateIp(
    subnetId: string,
    address: string,
    owner: string,
    state: IpState,
    fields: { subnet: string; address: string },
  ): Promise<IpAddress> {
    need(subnetId, fields.subnet);
    if (address !== "") {
      const alloc = await this.subnetAllocator(subnetId, fields.subnet);
      const ip = requireIp(address, fields.address);
      alloc.check(ip, fields.address);
      const text = formatIp(ip);
      // A shared store decides by itself: this replica's bit may be stale (released elsewhere).
      const fresh = alloc.mark(ip.value);
      if (!fresh && this.store.exclusive)
        fail(Code.AlreadyExists, `resources: ${fields.address}: ${text} is already allocated in subnet "${subnetId}"`);
      try {
        return await this.commitOne<IpAddress>(this.ipCreateOp(subnetId, text, owner, state));
      } catch (err) {
        if (fresh && (this.store.exclusive || !isStatusError(err, Code.AlreadyExists))) alloc.clear(ip.value);
        if (isStatusError(err, Code.AlreadyExists))
          fail(Code.AlreadyExists, `resources: ${fields.address}: ${text} is already allocated in subnet "${subnetId}"`);
        throw err;
      }
    }
    let resynced = false;
    for (;;) {
      const alloc = await this.subnetAllocator(subnetId, fields.subnet);
      const v = alloc.take(!this.store.exclusive);
      if (v === undefined) {
        if (!this.store.exclusive && !resynced) {
          // Other replicas may have released addresses this bitmap still counts as taken.
          resynced = true;
          await this.resyncSubnet(subnetId);
          continue;
        }
        fail(Code.ResourceExhausted, `resources: ${fields.subnet}: subnet "${subnetId}" (${formatCidr(alloc.cidr)}) has no free address`);
      }
      try {
        return await this.commitOne<IpAddress>(this.ipCreateOp(subnetId, formatIp({ family: alloc.cidr.family, value: v }), owner, state));
      } catch (err) {
        // Taken by another replica: keep the bit (it is taken) and try the next one.
        if (!this.store.exclusive && isStatusError(err, Code.AlreadyExists)) {
          this.conflicts++;
          continue;
        }
        alloc.clear(v);
        throw err;
      }
    }
  }

  private async allocateMac(address: string, oui: string, owner: string, field: string): Promise<MacAddress> {
    if (address !== "") {
      const v = requireMac(address, field);
      if ((v >> 40n) & 1n) fail(Code.InvalidArgument, `resources: ${field}: ${address} is a multicast address`);
      const text = formatMac(v);
      const alloc = this.macs.get(v >> 24n);
      const fresh = alloc?.mark(v) ?? false;
      if (alloc !== undefined && !fresh && this.store.exclusive)
        fail(Code.AlreadyExists, `resources: ${field}: ${text} is already allocated`);
      try {
        return await this.commitOne<MacAddress>({
          type: "create",
          kind: "mac",
          id: text,
          value: create(MacAddressSchema, { address: text, owner }),
          refs: [],
        });
      } catch (err) {
        if (fresh && (this.store.exclusive || !isStatusError(err, Code.AlreadyExists))) alloc?.clear(v);
        if (isStatusError(err, Code.AlreadyExists)) fail(Code.AlreadyExists, `resources: ${field}: ${text} is already allocated`);
        throw err;
      }
    }
    const alloc = await this.macAllocator(oui === "" ? this.defaultOui : requireOui(oui, "oui"));
    for (;;) {
      const v = alloc.take() ?? fail(Code.ResourceExhausted, `resources: ${field}: no free MAC under the OUI`);
      const text = formatMac(v);
      try {
        return await this.commitOne<MacAddress>({
          type: "create",
          kind: "mac",
          id: text,
          value: create(MacAddressSchema, { address: text, owner }),
          refs: [],
        });
      } catch (err) {
        if (isStatusError(err, Code.AlreadyExists)) continue;
        alloc.clear(v);
        throw err;
      }
    }
  }

  private forgetIp(subnetId: string, address: string): void {
    const ip = parseIp(address);
    if (ip !== undefined) this.subnets.get(subnetId)?.clear(ip.value);
  }

  /** The subnet's allocator, loaded once (under the subnet's lock) from the subnet and its allocated addresses. */
  private async subnetAllocator(subnetId: string, field: string): Promise<SubnetAllocator> {
    return (
      this.subnets.get(subnetId) ??
      this.locks.run(`subnet/${subnetId}`, async () => this.subnets.get(subnetId) ?? this.loadSubnet(subnetId, field))
    );
  }

  private async resyncSubnet(subnetId: string): Promise<void> {
    await this.locks.run(`subnet/${subnetId}`, async () => {
      this.subnets.delete(subnetId);
      await this.loadSubnet(subnetId, "subnet_id");
    });
  }

  /** Subscribes the bitmaps to the store's changes of `kind` (shared stores with a feed only). */
  private async follow(kind: "ip" | "mac" | "subnet"): Promise<void> {
    const watch = this.store.watchKind;
    if (this.store.exclusive || watch === undefined) return;
    let feed = this.feeds.get(kind);
    if (feed === undefined) {
      const onChange =
        kind === "subnet"
          ? (id: string, deleted: boolean): void => {
              // Deleted elsewhere: drop the bitmap so a re-created subnet of that id is loaded afresh.
              if (deleted) this.subnets.delete(id);
            }
          : kind === "ip"
            ? (id: string, deleted: boolean): void => {
                const slash = id.lastIndexOf("/");
                const alloc = this.subnets.get(id.slice(0, slash));
                const ip = parseIp(id.slice(slash + 1));
                if (alloc === undefined || ip === undefined) return;
                if (deleted) alloc.clear(ip.value);
                else alloc.mark(ip.value);
              }
            : (id: string, deleted: boolean): void => {
                const v = BigInt(`0x${id.replace(/:/g, "")}`);
                const alloc = this.macs.get(v >> 24n);
                if (deleted) alloc?.clear(v);
                else alloc?.mark(v);
              };
      feed = watch.call(this.store, kind, onChange).then(
        () => undefined,
        (err: unknown) => {
          this.feeds.delete(kind);
          this.log.warn({ err, kind }, "resources: no change feed; replicas learn of each other's addresses by conflicts");
        },
      );
      this.feeds.set(kind, feed);
    }
    await feed;
  }

  private async loadSubnet(subnetId: string, field: string): Promise<SubnetAllocator> {
    // The feed starts before the load; a change that lands while loading may be missed, which costs at most a
    // conflict (the store refuses a taken address) or one resync (a released one looks taken).
    await Promise.all([this.follow("subnet"), this.follow("ip")]);
    const s = await this.getRecord<Subnet>("subnet", subnetId, field);
    const cidr = requireCidr(s.cidr, "cidr");
    const gateway = s.gatewayIp === "" ? undefined : requireIp(s.gatewayIp, "gateway_ip").value;
    const pools: Array<[bigint, bigint]> =
      s.allocationPools.length === 0
        ? [[cidr.base, cidr.base + cidr.size - 1n]]
        : s.allocationPools.map((p) => [requireIp(p.start, "start").value, requireIp(p.end, "end").value]);
    const alloc = new SubnetAllocator(subnetId, cidr, gateway, pools);
    for (const r of await this.store.list("ip", { prefix: `${subnetId}/` })) {
      const ip = parseIp((r.value as IpAddress).address);
      if (ip !== undefined) alloc.mark(ip.value);
    }
    this.subnets.set(subnetId, alloc);
    return alloc;
  }

  private async macAllocator(oui: bigint): Promise<MacAllocator> {
    const have = this.macs.get(oui);
    if (have !== undefined) return have;
    return this.locks.run(`oui/${oui}`, async () => {
      const again = this.macs.get(oui);
      if (again !== undefined) return again;
      await this.follow("mac");
      const alloc = new MacAllocator(oui);
      const prefix = formatMac(oui << 24n).slice(0, 9);
      for (const r of await this.store.list("mac", { prefix })) alloc.mark(requireMac(r.id, "address"));
      this.macs.set(oui, alloc);
      return alloc;
    });
  }

  private async getRecord<T extends WithRevision>(kind: ResourceKind, id: string, field = "id"): Promise<T> {
    const rec = await this.store.get(kind, id);
    if (rec === undefined) fail(Code.NotFound, `resources: ${field}: ${describeRecord(kind, id)} not found`);
    return withRevision<T>(rec);
  }

  private async requireExists(kind: ResourceKind, id: string, field: string): Promise<void> {
    if ((await this.store.get(kind, id)) === undefined) fail(Code.NotFound, `resources: ${field}: ${describeRecord(kind, id)} not found`);
  }

  private async commitOne<T extends WithRevision>(op: StoreOp): Promise<T> {
    const [rev] = await this.store.commit([op]);
    if (op.type === "delete") throw new StatusError(Code.Internal, "resources: commitOne of a delete");
    return { ...(op.value as T), revision: rev ?? "" };
  }

  /** Creates all records or none: one commit when the store takes them, else chunks undone on failure. */
  private async commitMany<T extends WithRevision>(ops: readonly StoreOp[]): Promise<T[]> {
    const revs = await this.commitChunked(ops);
    return ops.map((op, i) => ({ ...((op as { value: Message }).value as T), revision: revs[i] ?? "" }));
  }

  private async commitChunked(ops: readonly StoreOp[]): Promise<string[]> {
    const max = this.store.maxRecordsPerCommit ?? Infinity;
    if (ops.length <= max) return this.store.commit(ops);
    const revs: string[] = [];
    const doneCreates: StoreOp[] = [];
    try {
      for (let i = 0; i < ops.length; i += max) {
        const chunk = ops.slice(i, i + max);
        revs.push(...(await this.store.commit(chunk)));
        doneCreates.push(...chunk.filter((o) => o.type === "create"));
      }
      return revs;
    } catch (err) {
      // Deletes already committed cannot be undone; creates can (bulk deletes are at most best effort beyond one chunk).
      for (let i = 0; i < doneCreates.length; i += max) {
        const chunk = doneCreates.slice(i, i + max).map((o): StoreOp => ({ type: "delete", kind: o.kind, id: o.id }));
        await this.store.commit(chunk).catch((e: unknown) => this.log.error({ err: e }, "resources: undoing a partial bulk create failed"));
      }
      throw err;
    }
  }
}

/** Creates the managers over a store (default: a new memory store). */
export function createResourceManagers(opts: ResourceManagersOptions = {}): ResourceManagers {
  return new ResourceManagers(opts);
}

function formatCidrOf(s: string, field: string): string {
  return formatCidr(requireCidr(s, field));
}

function canonicalIp(s: string, field: string): string {
  return formatIp(requireIp(need(s, field), field));
}

function subnetRefs(s: Subnet): RecordRef[] {
  const refs: RecordRef[] = [{ kind: "network", id: s.networkId }];
  if (s.routeTableId !== "") refs.push({ kind: "routetable", id: s.routeTableId });
  return refs;
}

function portRefs(p: Port): RecordRef[] {
  const refs: RecordRef[] = [{ kind: "network", id: p.networkId }];
  const subnets = new Set(p.fixedIps.map((f) => f.subnetId));
  for (const s of subnets) refs.push({ kind: "subnet", id: s });
  for (const f of p.fixedIps) refs.push({ kind: "ip", id: ipId(f.subnetId, f.ipAddress) });
  if (p.macAddress !== "") refs.push({ kind: "mac", id: p.macAddress });
  for (const sg of new Set(p.securityGroupIds)) refs.push({ kind: "securitygroup", id: sg });
  return refs;
}

function listFilter(kind: ResourceKind, req: ListRequest): (v: Message) => boolean {
  const eq = (want: string, have: string): boolean => want === "" || want === have;
  switch (kind) {
    case "network":
    case "securitygroup":
      return (v) => eq(req.name, (v as Network).name);
    case "subnet":
      return (v) => eq(req.networkId, (v as Subnet).networkId) && eq(req.name, (v as Subnet).name);
    case "routetable":
      return (v) => eq(req.networkId, (v as RouteTable).networkId) && eq(req.name, (v as RouteTable).name);
    case "ip":
      return (v) => {
        const ip = v as IpAddress;
        return eq(req.subnetId, ip.subnetId) && eq(req.owner, ip.owner) && (req.state === IpState.UNSPECIFIED || req.state === ip.state);
      };
    case "mac":
      return (v) => eq(req.owner, (v as MacAddress).owner);
    case "port":
      return (v) => {
        const p = v as Port;
        return (
          eq(req.networkId, p.networkId) &&
          eq(req.owner, p.owner) &&
          eq(req.name, p.name) &&
          (req.subnetId === "" || p.fixedIps.some((f) => f.subnetId === req.subnetId))
        );
      };
  }
}
