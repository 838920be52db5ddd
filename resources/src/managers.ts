/**
 * The resource managers (after Alcor): networks, subnets, IP and MAC addresses, ports, security groups and
 * route tables, virtual IPs, DNS records and nodes over one `ResourceStore`. Every write is a store commit with compare-on-revision; deletes of
 * referenced records fail with FailedPrecondition; addresses come from per-subnet and per-OUI bitmaps; a port
 * is created in steps (addresses, MAC, record), each undone in reverse order when a later one fails. Each kind
 * lives in its own module under `managers/`; this class is the one surface that serves them all. Every write
 * takes an optional `caller` (certificate mode): creates record it as the creator, and updates, releases and
 * deletes of records another identity created fail with PermissionDenied unless the caller is an admin.
 */
import type {
  AllocateIpAddressRequest,
  AllocateMacAddressRequest,
  BulkAllocateIpAddressesRequest,
  BulkAllocateMacAddressesRequest,
  IpAddress,
  IpAddressRef,
  ListRequest,
  MacAddress,
  MacAddressRef,
  Network,
  Port,
  ResourceRef,
  RouteTable,
  SecurityGroup,
  Subnet,
} from "@nsm-ts/api/resources";
import { type Clock, realClock } from "@nsm-ts/base/clock";
import { type Logger, silentLogger } from "@nsm-ts/base/log";
import { requireOui } from "./address.js";
import { DnsRecords } from "./managers/dns.js";
import { ChangeFeeds } from "./managers/feed.js";
import { need } from "./managers/fields.js";
import { IpAddresses } from "./managers/ips.js";
import { listPage } from "./managers/listing.js";
import { MacAddresses } from "./managers/macs.js";
import { Networks, Subnets } from "./managers/networks.js";
import { DEFAULT_HEARTBEAT_TIMEOUT_MS, Nodes } from "./managers/nodes.js";
import { RouteTables, SecurityGroups } from "./managers/policies.js";
import { Ports } from "./managers/ports.js";
import { Records, type WithRevision } from "./managers/records.js";
import { VirtualIps } from "./managers/vips.js";
import { createMemoryResourceStore } from "./memory-store.js";
import type { ResourceKind, ResourceStore, StoreOp, WriteCaller } from "./store.js";

export { MAX_BULK } from "./managers/fields.js";
export { DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE } from "./managers/listing.js";

/** Default OUI of random MACs (the one OpenStack uses for its ports). */
export const DEFAULT_MAC_OUI = "fa:16:3e";

/** Options of `createResourceManagers`. */
export interface ResourceManagersOptions {
  /** Where records live; default a new memory store. */
  store?: ResourceStore;
  /** OUI of random MACs; default `fa:16:3e`. */
  macOui?: string;
  /** Where rollbacks that fail are logged; default silent. */
  log?: Logger;
  /** Time source of node heartbeats; default the real clock. */
  clock?: Clock;
  /** Time without a heartbeat after which a node goes out of service; default 30 s. */
  heartbeatTimeoutMs?: number;
}

/** The managers; `registerResourceManagers` serves them over gRPC, tests and programs may call them directly. */
export class ResourceManagers {
  /** The store the managers write to. */
  readonly store: ResourceStore;
  private readonly records: Records;
  private readonly networks: Networks;
  private readonly subnets: Subnets;
  private readonly ips: IpAddresses;
  private readonly macs: MacAddresses;
  private readonly ports: Ports;
  private readonly securityGroups: SecurityGroups;
  private readonly routeTables: RouteTables;
  /** Virtual (public) IPs bound to ports. */
  readonly virtualIps: VirtualIps;
  /** DNS records of ports and addresses. */
  readonly dnsRecords: DnsRecords;
  /** Nodes, their heartbeats and service state. */
  readonly nodes: Nodes;

  constructor(opts: ResourceManagersOptions = {}) {
    this.store = opts.store ?? createMemoryResourceStore();
    const log = opts.log ?? silentLogger;
    const defaultOui = requireOui(opts.macOui ?? DEFAULT_MAC_OUI, "macOui");
    this.records = new Records(this.store, log);
    const feeds = new ChangeFeeds(this.store, log);
    this.networks = new Networks(this.records);
    this.subnets = new Subnets(this.records);
    this.ips = new IpAddresses(this.records, feeds);
    this.macs = new MacAddresses(this.records, feeds, defaultOui);
    this.ports = new Ports(this.records, this.ips, this.macs, log);
    this.securityGroups = new SecurityGroups(this.records);
    this.routeTables = new RouteTables(this.records);
    this.virtualIps = new VirtualIps(this.records, this.ips, log);
    this.dnsRecords = new DnsRecords(this.records);
    this.nodes = new Nodes(this.records, opts.clock ?? realClock, log, opts.heartbeatTimeoutMs ?? DEFAULT_HEARTBEAT_TIMEOUT_MS);
  }

  /** Allocations a shared store refused because another writer held the address; each cost one retry. */
  get conflicts(): number {
    return this.ips.conflicts;
  }
  set conflicts(n: number) {
    this.ips.conflicts = n;
  }

  /** Creates a network (id generated when empty). */
  async createNetwork(n: Network, caller?: WriteCaller): Promise<Network> {
    return this.networks.create(n, caller);
  }
  /** Creates several networks, all or none. */
  async bulkCreateNetworks(items: readonly Network[], caller?: WriteCaller): Promise<Network[]> {
    return this.networks.bulkCreate(items, caller);
  }
  /** Renames a network; its CIDR cannot change. */
  async updateNetwork(n: Network, caller?: WriteCaller): Promise<Network> {
    return this.networks.update(n, caller);
  }

  /** Creates a subnet of a network: CIDR inside the network's, not overlapping its other subnets. */
  async createSubnet(s: Subnet, caller?: WriteCaller): Promise<Subnet> {
    return this.subnets.create(s, caller);
  }
  /** Creates several subnets, all or none. */
  async bulkCreateSubnets(items: readonly Subnet[], caller?: WriteCaller): Promise<Subnet[]> {
    return this.subnets.bulkCreate(items, caller);
  }
  /** Changes a subnet's name and route table; CIDR, gateway, pools and network cannot change. */
  async updateSubnet(s: Subnet, caller?: WriteCaller): Promise<Subnet> {
    return this.subnets.update(s, caller);
  }

  /** Allocates the given address, or the next free one (lowest for IPv4 and small pools, random for IPv6). */
  async allocateIpAddress(req: AllocateIpAddressRequest, caller?: WriteCaller): Promise<IpAddress> {
    return this.ips.allocate(req.subnetId, req.address, req.owner, req.state, undefined, caller);
  }
  /** Allocates `count` addresses from one subnet, all or none. */
  async bulkAllocateIpAddresses(req: BulkAllocateIpAddressesRequest, caller?: WriteCaller): Promise<IpAddress[]> {
    return this.ips.bulkAllocate(req, caller);
  }
  /** Reads one address. */
  async getIpAddress(ref: IpAddressRef): Promise<IpAddress> {
    return this.ips.get(ref);
  }
  /** Changes an address's state and owner. */
  async updateIpAddress(ip: IpAddress, caller?: WriteCaller): Promise<IpAddress> {
    return this.ips.update(ip, caller);
  }
  /** Releases one address (FailedPrecondition while a port holds it). */
  async releaseIpAddress(ref: IpAddressRef, caller?: WriteCaller): Promise<void> {
    return this.ips.bulkRelease([ref], caller);
  }
  /** Releases several addresses, all or none. */
  async bulkReleaseIpAddresses(refs: readonly IpAddressRef[], caller?: WriteCaller): Promise<void> {
    return this.ips.bulkRelease(refs, caller);
  }

  /** Allocates the given MAC, or a random one under the OUI. */
  async allocateMacAddress(req: AllocateMacAddressRequest, caller?: WriteCaller): Promise<MacAddress> {
    return this.macs.allocate(req.address, req.oui, req.owner, "address", caller);
  }
  /** Allocates `count` random MACs, all or none. */
  async bulkAllocateMacAddresses(req: BulkAllocateMacAddressesRequest, caller?: WriteCaller): Promise<MacAddress[]> {
    return this.macs.bulkAllocate(req, caller);
  }
  /** Reads one MAC. */
  async getMacAddress(ref: MacAddressRef): Promise<MacAddress> {
    return this.macs.get(ref);
  }
  /** Changes a MAC's owner. */
  async updateMacAddress(m: MacAddress, caller?: WriteCaller): Promise<MacAddress> {
    return this.macs.update(m, caller);
  }
  /** Releases one MAC (FailedPrecondition while a port holds it). */
  async releaseMacAddress(ref: MacAddressRef, caller?: WriteCaller): Promise<void> {
    return this.macs.bulkRelease([ref], caller);
  }
  /** Releases several MACs, all or none. */
  async bulkReleaseMacAddresses(refs: readonly MacAddressRef[], caller?: WriteCaller): Promise<void> {
    return this.macs.bulkRelease(refs, caller);
  }

  /**
   * Creates a port in steps: each fixed IP (any free one when `ip_address` is empty; by default one from the
   * network's first subnet), then the MAC, then the record. A failing step undoes every earlier one.
   */
  async createPort(p: Port, at = "", caller?: WriteCaller): Promise<Port> {
    return this.ports.create(p, at, caller);
  }
  /** Creates several ports; when one fails, the ones already created are deleted again. */
  async bulkCreatePorts(items: readonly Port[], caller?: WriteCaller): Promise<Port[]> {
    return this.ports.bulkCreate(items, caller);
  }
  /** Changes a port's name, owner and security groups; its addresses and MAC stay. */
  async updatePort(p: Port, caller?: WriteCaller): Promise<Port> {
    return this.ports.update(p, caller);
  }
  /** Deletes ports together with their addresses and MACs. */
  async deletePorts(refs: ReadonlyArray<{ id: string; revision: string }>, caller?: WriteCaller): Promise<void> {
    return this.ports.delete(refs, caller);
  }

  /** Creates a security group (rule ids generated when empty). */
  async createSecurityGroup(g: SecurityGroup, caller?: WriteCaller): Promise<SecurityGroup> {
    return this.securityGroups.create(g, caller);
  }
  /** Creates several security groups, all or none. */
  async bulkCreateSecurityGroups(items: readonly SecurityGroup[], caller?: WriteCaller): Promise<SecurityGroup[]> {
    return this.securityGroups.bulkCreate(items, caller);
  }
  /** Replaces a security group's name and rules. */
  async updateSecurityGroup(g: SecurityGroup, caller?: WriteCaller): Promise<SecurityGroup> {
    return this.securityGroups.update(g, caller);
  }

  /** Creates a route table. */
  async createRouteTable(t: RouteTable, caller?: WriteCaller): Promise<RouteTable> {
    return this.routeTables.create(t, caller);
  }
  /** Creates several route tables, all or none. */
  async bulkCreateRouteTables(items: readonly RouteTable[], caller?: WriteCaller): Promise<RouteTable[]> {
    return this.routeTables.bulkCreate(items, caller);
  }
  /** Replaces a route table's name and routes. */
  async updateRouteTable(t: RouteTable, caller?: WriteCaller): Promise<RouteTable> {
    return this.routeTables.update(t, caller);
  }

  /** Reads one record of a kind. */
  async get<T extends WithRevision>(kind: ResourceKind, ref: ResourceRef): Promise<T> {
    return this.records.get<T>(kind, need(ref.id, "id"));
  }

  /** Deletes records of a kind, all or none (ports also release their addresses and MACs). */
  async delete(kind: ResourceKind, refs: readonly ResourceRef[], caller?: WriteCaller): Promise<void> {
    if (kind === "port") return this.ports.delete(refs, caller);
    if (kind === "vip") return this.virtualIps.delete(refs, caller);
    const ops: StoreOp[] = refs.map((r, i) => ({
      type: "delete",
      kind,
      id: need(r.id, refs.length > 1 ? `refs[${i}].id` : "id"),
      revision: r.revision,
    }));
    await this.records.commitChunked(ops, caller);
    if (kind === "subnet") for (const r of refs) this.ips.dropSubnet(r.id);
  }

  /** One page of a kind in id order, filtered by the request's fields that apply to it. */
  async list<T extends WithRevision>(kind: ResourceKind, req: ListRequest): Promise<{ items: T[]; nextPageToken: string }> {
    return listPage<T>(this.store, kind, req);
  }
}

/** Creates the managers over a store (default: a new memory store). */
export function createResourceManagers(opts: ResourceManagersOptions = {}): ResourceManagers {
  return new ResourceManagers(opts);
}
