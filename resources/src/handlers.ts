/**
 * The handlers of every `nsmts.resources.v1` service, written once against a minimal call context (`{ signal }`)
 * that our gRPC layer's and Connect's contexts both satisfy, so the same functions serve gRPC and Connect JSON.
 * Each takes the writing identity from `callerOf` (gRPC: the peer certificate; Connect: see `resourceConnectRoutes`).
 */
import type { DescMethodServerStreaming, DescMethodUnary, DescService, MessageInitShape, MessageShape } from "@bufbuild/protobuf";
import type {
  DnsRecord,
  DnsRecordManager,
  IpAddress,
  IpAddressManager,
  MacAddress,
  MacAddressManager,
  Network,
  NetworkManager,
  Node,
  NodeManager,
  Port,
  PortManager,
  RouteTable,
  RouteTableManager,
  SecurityGroup,
  SecurityGroupManager,
  Subnet,
  SubnetManager,
  VirtualIp,
  VirtualIpManager,
} from "@nsm-ts/api/resources";
import type { ResourceManagers } from "./managers.js";
import { watchHandler } from "./serve-watch.js";
import type { WriteCaller } from "./store.js";

/** What every handler reads of its call. */
export interface ResourceCallContext {
  readonly signal: AbortSignal;
}

/** How the handlers learn who writes: undefined = no identity (dev mode); may throw PermissionDenied. */
export type CallerOf<C extends ResourceCallContext> = (ctx: C) => WriteCaller | undefined;

/** The handler object of a service whose handlers take the call context `C` (unary and server streaming). */
export type HandlersOf<S extends DescService, C> = {
  [K in keyof S["method"]]: S["method"][K] extends DescMethodUnary<infer I, infer O>
    ? (req: MessageShape<I>, ctx: C) => Promise<MessageInitShape<O>>
    : S["method"][K] extends DescMethodServerStreaming<infer I, infer O>
      ? (req: MessageShape<I>, ctx: C) => AsyncIterable<MessageInitShape<O>>
      : never;
};

/** Deletes and releases answer an empty message once the store has committed. */
const thenOk = async (done: Promise<unknown>): Promise<Record<string, never>> => {
  await done;
  return {};
};

/** The handler objects of the core services (pass each to `server.addService` or a Connect route). */
export function resourceHandlers<C extends ResourceCallContext>(m: ResourceManagers, callerOf: CallerOf<C>, watchBufferSize?: number) {
  const networks: HandlersOf<typeof NetworkManager, C> = {
    createNetwork: (r, c) => m.createNetwork(r, callerOf(c)),
    getNetwork: (r) => m.get<Network>("network", r),
    updateNetwork: (r, c) => m.updateNetwork(r, callerOf(c)),
    deleteNetwork: (r, c) => thenOk(m.delete("network", [r], callerOf(c))),
    listNetworks: (r) => m.list<Network>("network", r),
    bulkCreateNetworks: async (r, c) => ({ items: await m.bulkCreateNetworks(r.items, callerOf(c)) }),
    bulkDeleteNetworks: (r, c) => thenOk(m.delete("network", r.refs, callerOf(c))),
    watchNetworks: watchHandler<Network>(m.store, "network", watchBufferSize),
  };
  const subnets: HandlersOf<typeof SubnetManager, C> = {
    createSubnet: (r, c) => m.createSubnet(r, callerOf(c)),
    getSubnet: (r) => m.get<Subnet>("subnet", r),
    updateSubnet: (r, c) => m.updateSubnet(r, callerOf(c)),
    deleteSubnet: (r, c) => thenOk(m.delete("subnet", [r], callerOf(c))),
    listSubnets: (r) => m.list<Subnet>("subnet", r),
    bulkCreateSubnets: async (r, c) => ({ items: await m.bulkCreateSubnets(r.items, callerOf(c)) }),
    bulkDeleteSubnets: (r, c) => thenOk(m.delete("subnet", r.refs, callerOf(c))),
    watchSubnets: watchHandler<Subnet>(m.store, "subnet", watchBufferSize),
  };
  const ips: HandlersOf<typeof IpAddressManager, C> = {
    allocateIpAddress: (r, c) => m.allocateIpAddress(r, callerOf(c)),
    getIpAddress: (r) => m.getIpAddress(r),
    updateIpAddress: (r, c) => m.updateIpAddress(r, callerOf(c)),
    releaseIpAddress: (r, c) => thenOk(m.releaseIpAddress(r, callerOf(c))),
    listIpAddresses: (r) => m.list<IpAddress>("ip", r),
    bulkAllocateIpAddresses: async (r, c) => ({ items: await m.bulkAllocateIpAddresses(r, callerOf(c)) }),
    bulkReleaseIpAddresses: (r, c) => thenOk(m.bulkReleaseIpAddresses(r.refs, callerOf(c))),
    watchIpAddresses: watchHandler<IpAddress>(m.store, "ip", watchBufferSize),
  };
  const macs: HandlersOf<typeof MacAddressManager, C> = {
    allocateMacAddress: (r, c) => m.allocateMacAddress(r, callerOf(c)),
    getMacAddress: (r) => m.getMacAddress(r),
    updateMacAddress: (r, c) => m.updateMacAddress(r, callerOf(c)),
    releaseMacAddress: (r, c) => thenOk(m.releaseMacAddress(r, callerOf(c))),
    listMacAddresses: (r) => m.list<MacAddress>("mac", r),
    bulkAllocateMacAddresses: async (r, c) => ({ items: await m.bulkAllocateMacAddresses(r, callerOf(c)) }),
    bulkReleaseMacAddresses: (r, c) => thenOk(m.bulkReleaseMacAddresses(r.refs, callerOf(c))),
    watchMacAddresses: watchHandler<MacAddress>(m.store, "mac", watchBufferSize),
  };
  const ports: HandlersOf<typeof PortManager, C> = {
    createPort: (r, c) => m.createPort(r, "", callerOf(c)),
    getPort: (r) => m.get<Port>("port", r),
    updatePort: (r, c) => m.updatePort(r, callerOf(c)),
    deletePort: (r, c) => thenOk(m.delete("port", [r], callerOf(c))),
    listPorts: (r) => m.list<Port>("port", r),
    bulkCreatePorts: async (r, c) => ({ items: await m.bulkCreatePorts(r.items, callerOf(c)) }),
    bulkDeletePorts: (r, c) => thenOk(m.delete("port", r.refs, callerOf(c))),
    watchPorts: watchHandler<Port>(m.store, "port", watchBufferSize),
  };
  const securityGroups: HandlersOf<typeof SecurityGroupManager, C> = {
    createSecurityGroup: (r, c) => m.createSecurityGroup(r, callerOf(c)),
    getSecurityGroup: (r) => m.get<SecurityGroup>("securitygroup", r),
    updateSecurityGroup: (r, c) => m.updateSecurityGroup(r, callerOf(c)),
    deleteSecurityGroup: (r, c) => thenOk(m.delete("securitygroup", [r], callerOf(c))),
    listSecurityGroups: (r) => m.list<SecurityGroup>("securitygroup", r),
    bulkCreateSecurityGroups: async (r, c) => ({ items: await m.bulkCreateSecurityGroups(r.items, callerOf(c)) }),
    bulkDeleteSecurityGroups: (r, c) => thenOk(m.delete("securitygroup", r.refs, callerOf(c))),
    watchSecurityGroups: watchHandler<SecurityGroup>(m.store, "securitygroup", watchBufferSize),
  };
  const routeTables: HandlersOf<typeof RouteTableManager, C> = {
    createRouteTable: (r, c) => m.createRouteTable(r, callerOf(c)),
    getRouteTable: (r) => m.get<RouteTable>("routetable", r),
    updateRouteTable: (r, c) => m.updateRouteTable(r, callerOf(c)),
    deleteRouteTable: (r, c) => thenOk(m.delete("routetable", [r], callerOf(c))),
    listRouteTables: (r) => m.list<RouteTable>("routetable", r),
    bulkCreateRouteTables: async (r, c) => ({ items: await m.bulkCreateRouteTables(r.items, callerOf(c)) }),
    bulkDeleteRouteTables: (r, c) => thenOk(m.delete("routetable", r.refs, callerOf(c))),
    watchRouteTables: watchHandler<RouteTable>(m.store, "routetable", watchBufferSize),
  };
  const vips: HandlersOf<typeof VirtualIpManager, C> = {
    createVirtualIp: (r, c) => m.virtualIps.create(r, callerOf(c)),
    getVirtualIp: (r) => m.get<VirtualIp>("vip", r),
    updateVirtualIp: (r, c) => m.virtualIps.update(r, callerOf(c)),
    deleteVirtualIp: (r, c) => thenOk(m.delete("vip", [r], callerOf(c))),
    listVirtualIps: (r) => m.list<VirtualIp>("vip", r),
    bulkCreateVirtualIps: async (r, c) => ({ items: await m.virtualIps.bulkCreate(r.items, callerOf(c)) }),
    bulkDeleteVirtualIps: (r, c) => thenOk(m.delete("vip", r.refs, callerOf(c))),
    watchVirtualIps: watchHandler<VirtualIp>(m.store, "vip", watchBufferSize),
  };
  const dns: HandlersOf<typeof DnsRecordManager, C> = {
    createDnsRecord: (r, c) => m.dnsRecords.create(r, callerOf(c)),
    getDnsRecord: (r) => m.get<DnsRecord>("dns", r),
    updateDnsRecord: (r, c) => m.dnsRecords.update(r, callerOf(c)),
    deleteDnsRecord: (r, c) => thenOk(m.delete("dns", [r], callerOf(c))),
    listDnsRecords: (r) => m.list<DnsRecord>("dns", r),
    bulkCreateDnsRecords: async (r, c) => ({ items: await m.dnsRecords.bulkCreate(r.items, callerOf(c)) }),
    bulkDeleteDnsRecords: (r, c) => thenOk(m.delete("dns", r.refs, callerOf(c))),
    watchDnsRecords: watchHandler<DnsRecord>(m.store, "dns", watchBufferSize),
  };
  const nodes: HandlersOf<typeof NodeManager, C> = {
    createNode: (r, c) => m.nodes.create(r, callerOf(c)),
    getNode: (r) => m.get<Node>("node", r),
    updateNode: (r, c) => m.nodes.update(r, callerOf(c)),
    deleteNode: (r, c) => thenOk(m.delete("node", [r], callerOf(c))),
    listNodes: (r) => m.list<Node>("node", r),
    heartbeat: (r, c) => m.nodes.heartbeat(r, callerOf(c)),
    watchNodes: watchHandler<Node>(m.store, "node", watchBufferSize),
  };
  return { networks, subnets, ips, macs, ports, securityGroups, routeTables, vips, dns, nodes };
}
