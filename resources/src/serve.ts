/**
 * Serving the resource managers over gRPC: every `nsmts.resources.v1` service on an nsm-ts server, and upstream
 * `ipam.IPAM/ManagePrefixes` from a prefix pool when one is configured. Handlers are thin: the managers
 * validate, allocate and map every failure to a status code.
 */
import { IPAM } from "@nsm-ts/api/ipam";
import {
  type IpAddress,
  IpAddressManager,
  type MacAddress,
  MacAddressManager,
  type Network,
  NetworkManager,
  type Port,
  PortManager,
  type RouteTable,
  RouteTableManager,
  type SecurityGroup,
  SecurityGroupManager,
  type Subnet,
  SubnetManager,
} from "@nsm-ts/api/resources";
import type { Clock } from "@nsm-ts/base/clock";
import type { NsmServer } from "@nsm-ts/base/grpc";
import { type Logger, silentLogger } from "@nsm-ts/base/log";
import { ResourceManagers } from "./managers.js";
import { createPrefixPool, type PrefixPool, type PrefixPoolOptions } from "./prefix-pool.js";
import type { ResourceStore } from "./store.js";

/** Options of `registerResourceManagers`. */
export interface RegisterResourceManagersOptions {
  /** Where records live (`createMemoryResourceStore()` or `createEtcdResourceStore(...)`). */
  store: ResourceStore;
  /** Time source; reserved for time-based policies (the managers have none yet); default the real clock. */
  clock?: Clock;
  /** Logger of rollbacks and prefix streams; default silent. */
  log?: Logger;
  /** OUI of random MACs; default `fa:16:3e`. */
  macOui?: string;
  /** The vL3 prefix pool; when set, `ipam.IPAM/ManagePrefixes` is served from it. */
  prefixPool?: PrefixPoolOptions | PrefixPool;
}

/** What `registerResourceManagers` set up, for callers that also use the managers in-process. */
export interface RegisteredResourceManagers {
  readonly managers: ResourceManagers;
  readonly prefixPool: PrefixPool | undefined;
}

/** Serves every resource manager (and ManagePrefixes when a prefix pool is given) on `server`. */
export function registerResourceManagers(server: NsmServer, opts: RegisterResourceManagersOptions): RegisteredResourceManagers {
  const log = opts.log ?? silentLogger;
  const m = new ResourceManagers({ store: opts.store, log, ...(opts.macOui === undefined ? {} : { macOui: opts.macOui }) });
  // Deletes and releases answer an empty message once the store has committed.
  const thenOk = async (done: Promise<unknown>): Promise<Record<string, never>> => {
    await done;
    return {};
  };

  server.addService(NetworkManager, {
    createNetwork: (r) => m.createNetwork(r),
    getNetwork: (r) => m.get<Network>("network", r),
    updateNetwork: (r) => m.updateNetwork(r),
    deleteNetwork: (r) => thenOk(m.delete("network", [r])),
    listNetworks: (r) => m.list<Network>("network", r),
    bulkCreateNetworks: async (r) => ({ items: await m.bulkCreateNetworks(r.items) }),
    bulkDeleteNetworks: (r) => thenOk(m.delete("network", r.refs)),
  });
  server.addService(SubnetManager, {
    createSubnet: (r) => m.createSubnet(r),
    getSubnet: (r) => m.get<Subnet>("subnet", r),
    updateSubnet: (r) => m.updateSubnet(r),
    deleteSubnet: (r) => thenOk(m.delete("subnet", [r])),
    listSubnets: (r) => m.list<Subnet>("subnet", r),
    bulkCreateSubnets: async (r) => ({ items: await m.bulkCreateSubnets(r.items) }),
    bulkDeleteSubnets: (r) => thenOk(m.delete("subnet", r.refs)),
  });
  server.addService(IpAddressManager, {
    allocateIpAddress: (r) => m.allocateIpAddress(r),
    getIpAddress: (r) => m.getIpAddress(r),
    updateIpAddress: (r) => m.updateIpAddress(r),
    releaseIpAddress: (r) => thenOk(m.releaseIpAddress(r)),
    listIpAddresses: (r) => m.list<IpAddress>("ip", r),
    bulkAllocateIpAddresses: async (r) => ({ items: await m.bulkAllocateIpAddresses(r) }),
    bulkReleaseIpAddresses: (r) => thenOk(m.bulkReleaseIpAddresses(r.refs)),
  });
  server.addService(MacAddressManager, {
    allocateMacAddress: (r) => m.allocateMacAddress(r),
    getMacAddress: (r) => m.getMacAddress(r),
    updateMacAddress: (r) => m.updateMacAddress(r),
    releaseMacAddress: (r) => thenOk(m.releaseMacAddress(r)),
    listMacAddresses: (r) => m.list<MacAddress>("mac", r),
    bulkAllocateMacAddresses: async (r) => ({ items: await m.bulkAllocateMacAddresses(r) }),
    bulkReleaseMacAddresses: (r) => thenOk(m.bulkReleaseMacAddresses(r.refs)),
  });
  server.addService(PortManager, {
    createPort: (r) => m.createPort(r),
    getPort: (r) => m.get<Port>("port", r),
    updatePort: (r) => m.updatePort(r),
    deletePort: (r) => thenOk(m.delete("port", [r])),
    listPorts: (r) => m.list<Port>("port", r),
    bulkCreatePorts: async (r) => ({ items: await m.bulkCreatePorts(r.items) }),
    bulkDeletePorts: (r) => thenOk(m.delete("port", r.refs)),
  });
  server.addService(SecurityGroupManager, {
    createSecurityGroup: (r) => m.createSecurityGroup(r),
    getSecurityGroup: (r) => m.get<SecurityGroup>("securitygroup", r),
    updateSecurityGroup: (r) => m.updateSecurityGroup(r),
    deleteSecurityGroup: (r) => thenOk(m.delete("securitygroup", [r])),
    listSecurityGroups: (r) => m.list<SecurityGroup>("securitygroup", r),
    bulkCreateSecurityGroups: async (r) => ({ items: await m.bulkCreateSecurityGroups(r.items) }),
    bulkDeleteSecurityGroups: (r) => thenOk(m.delete("securitygroup", r.refs)),
  });
  server.addService(RouteTableManager, {
    createRouteTable: (r) => m.createRouteTable(r),
    getRouteTable: (r) => m.get<RouteTable>("routetable", r),
    updateRouteTable: (r) => m.updateRouteTable(r),
    deleteRouteTable: (r) => thenOk(m.delete("routetable", [r])),
    listRouteTables: (r) => m.list<RouteTable>("routetable", r),
    bulkCreateRouteTables: async (r) => ({ items: await m.bulkCreateRouteTables(r.items) }),
    bulkDeleteRouteTables: (r) => thenOk(m.delete("routetable", r.refs)),
  });

  let pool: PrefixPool | undefined;
  if (opts.prefixPool !== undefined) {
    const p = "serve" in opts.prefixPool ? opts.prefixPool : createPrefixPool(opts.prefixPool);
    pool = p;
    server.addService(IPAM, { managePrefixes: (reqs) => p.serve(reqs) });
  }
  return { managers: m, prefixPool: pool };
}
