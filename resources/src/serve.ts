/**
 * Serving the resource managers over gRPC: every `nsmts.resources.v1` service on an nsm-ts server, and upstream
 * `ipam.IPAM/ManagePrefixes` from a prefix pool when one is configured. Handlers are thin: the managers
 * validate, allocate and map every failure to a status code. Every write is made as the caller: over mTLS its
 * SPIFFE ID becomes the creator of what it creates, and only that identity (or an admin, `admins`) may update,
 * release or delete the record (PermissionDenied naming policy `record_creator` otherwise). Without a peer
 * certificate (the insecure dev mode) there is no identity: nothing is recorded and anyone may change anything.
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
import { contextFromCall } from "@nsm-ts/base/context";
import type { NsmServer, ServerCallContext } from "@nsm-ts/base/grpc";
import { type Logger, silentLogger } from "@nsm-ts/base/log";
import { Code, fail } from "@nsm-ts/base/status";
import { ResourceManagers } from "./managers.js";
import { createPrefixPool, type PrefixPool, type PrefixPoolOptions } from "./prefix-pool.js";
import { watchHandler } from "./serve-watch.js";
import type { ResourceStore, WriteCaller } from "./store.js";

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
  /**
   * SPIFFE IDs that may update, release and delete records created by other identities (certificate mode only);
   * default none (`NSM_RESOURCES_ADMINS` in cmd-registry).
   */
  admins?: readonly string[];
  /** Live events buffered per Watch call before a slow reader is ended with ResourceExhausted; default 256. */
  watchBufferSize?: number;
}

/** What `registerResourceManagers` set up, for callers that also use the managers in-process. */
export interface RegisteredResourceManagers {
  readonly managers: ResourceManagers;
  readonly prefixPool: PrefixPool | undefined;
}

/** Serves every resource manager (and ManagePrefixes when a prefix pool is given) on `server`. */
export function registerResourceManagers(server: NsmServer, opts: RegisterResourceManagersOptions): RegisteredResourceManagers {
  const log = opts.log ?? silentLogger;
  const admins = new Set(opts.admins ?? []);
  const serveOpts = { log, ...(opts.clock === undefined ? {} : { clock: opts.clock }) };
  /** The writing identity of a call: undefined without a peer certificate (dev mode). */
  const callerOf = (sctx: ServerCallContext): WriteCaller | undefined => {
    const peer = contextFromCall(sctx, serveOpts).peer;
    if (peer?.certificate === undefined) return undefined;
    const spiffeId =
      peer.spiffeId ?? fail(Code.PermissionDenied, "resources: policy record_creator denied: the peer certificate names no SPIFFE ID");
    return { spiffeId, admin: admins.has(spiffeId) };
  };
  const m = new ResourceManagers({ store: opts.store, log, ...(opts.macOui === undefined ? {} : { macOui: opts.macOui }) });
  // Deletes and releases answer an empty message once the store has committed.
  const thenOk = async (done: Promise<unknown>): Promise<Record<string, never>> => {
    await done;
    return {};
  };

  server.addService(NetworkManager, {
    createNetwork: (r, c) => m.createNetwork(r, callerOf(c)),
    getNetwork: (r) => m.get<Network>("network", r),
    updateNetwork: (r, c) => m.updateNetwork(r, callerOf(c)),
    deleteNetwork: (r, c) => thenOk(m.delete("network", [r], callerOf(c))),
    listNetworks: (r) => m.list<Network>("network", r),
    bulkCreateNetworks: async (r, c) => ({ items: await m.bulkCreateNetworks(r.items, callerOf(c)) }),
    bulkDeleteNetworks: (r, c) => thenOk(m.delete("network", r.refs, callerOf(c))),
    watchNetworks: watchHandler<Network>(opts.store, "network", opts.watchBufferSize),
  });
  server.addService(SubnetManager, {
    createSubnet: (r, c) => m.createSubnet(r, callerOf(c)),
    getSubnet: (r) => m.get<Subnet>("subnet", r),
    updateSubnet: (r, c) => m.updateSubnet(r, callerOf(c)),
    deleteSubnet: (r, c) => thenOk(m.delete("subnet", [r], callerOf(c))),
    listSubnets: (r) => m.list<Subnet>("subnet", r),
    bulkCreateSubnets: async (r, c) => ({ items: await m.bulkCreateSubnets(r.items, callerOf(c)) }),
    bulkDeleteSubnets: (r, c) => thenOk(m.delete("subnet", r.refs, callerOf(c))),
    watchSubnets: watchHandler<Subnet>(opts.store, "subnet", opts.watchBufferSize),
  });
  server.addService(IpAddressManager, {
    allocateIpAddress: (r, c) => m.allocateIpAddress(r, callerOf(c)),
    getIpAddress: (r) => m.getIpAddress(r),
    updateIpAddress: (r, c) => m.updateIpAddress(r, callerOf(c)),
    releaseIpAddress: (r, c) => thenOk(m.releaseIpAddress(r, callerOf(c))),
    listIpAddresses: (r) => m.list<IpAddress>("ip", r),
    bulkAllocateIpAddresses: async (r, c) => ({ items: await m.bulkAllocateIpAddresses(r, callerOf(c)) }),
    bulkReleaseIpAddresses: (r, c) => thenOk(m.bulkReleaseIpAddresses(r.refs, callerOf(c))),
    watchIpAddresses: watchHandler<IpAddress>(opts.store, "ip", opts.watchBufferSize),
  });
  server.addService(MacAddressManager, {
    allocateMacAddress: (r, c) => m.allocateMacAddress(r, callerOf(c)),
    getMacAddress: (r) => m.getMacAddress(r),
    updateMacAddress: (r, c) => m.updateMacAddress(r, callerOf(c)),
    releaseMacAddress: (r, c) => thenOk(m.releaseMacAddress(r, callerOf(c))),
    listMacAddresses: (r) => m.list<MacAddress>("mac", r),
    bulkAllocateMacAddresses: async (r, c) => ({ items: await m.bulkAllocateMacAddresses(r, callerOf(c)) }),
    bulkReleaseMacAddresses: (r, c) => thenOk(m.bulkReleaseMacAddresses(r.refs, callerOf(c))),
    watchMacAddresses: watchHandler<MacAddress>(opts.store, "mac", opts.watchBufferSize),
  });
  server.addService(PortManager, {
    createPort: (r, c) => m.createPort(r, "", callerOf(c)),
    getPort: (r) => m.get<Port>("port", r),
    updatePort: (r, c) => m.updatePort(r, callerOf(c)),
    deletePort: (r, c) => thenOk(m.delete("port", [r], callerOf(c))),
    listPorts: (r) => m.list<Port>("port", r),
    bulkCreatePorts: async (r, c) => ({ items: await m.bulkCreatePorts(r.items, callerOf(c)) }),
    bulkDeletePorts: (r, c) => thenOk(m.delete("port", r.refs, callerOf(c))),
    watchPorts: watchHandler<Port>(opts.store, "port", opts.watchBufferSize),
  });
  server.addService(SecurityGroupManager, {
    createSecurityGroup: (r, c) => m.createSecurityGroup(r, callerOf(c)),
    getSecurityGroup: (r) => m.get<SecurityGroup>("securitygroup", r),
    updateSecurityGroup: (r, c) => m.updateSecurityGroup(r, callerOf(c)),
    deleteSecurityGroup: (r, c) => thenOk(m.delete("securitygroup", [r], callerOf(c))),
    listSecurityGroups: (r) => m.list<SecurityGroup>("securitygroup", r),
    bulkCreateSecurityGroups: async (r, c) => ({ items: await m.bulkCreateSecurityGroups(r.items, callerOf(c)) }),
    bulkDeleteSecurityGroups: (r, c) => thenOk(m.delete("securitygroup", r.refs, callerOf(c))),
    watchSecurityGroups: watchHandler<SecurityGroup>(opts.store, "securitygroup", opts.watchBufferSize),
  });
  server.addService(RouteTableManager, {
    createRouteTable: (r, c) => m.createRouteTable(r, callerOf(c)),
    getRouteTable: (r) => m.get<RouteTable>("routetable", r),
    updateRouteTable: (r, c) => m.updateRouteTable(r, callerOf(c)),
    deleteRouteTable: (r, c) => thenOk(m.delete("routetable", [r], callerOf(c))),
    listRouteTables: (r) => m.list<RouteTable>("routetable", r),
    bulkCreateRouteTables: async (r, c) => ({ items: await m.bulkCreateRouteTables(r.items, callerOf(c)) }),
    bulkDeleteRouteTables: (r, c) => thenOk(m.delete("routetable", r.refs, callerOf(c))),
    watchRouteTables: watchHandler<RouteTable>(opts.store, "routetable", opts.watchBufferSize),
  });

  let pool: PrefixPool | undefined;
  if (opts.prefixPool !== undefined) {
    const p = "serve" in opts.prefixPool ? opts.prefixPool : createPrefixPool(opts.prefixPool);
    pool = p;
    server.addService(IPAM, { managePrefixes: (reqs) => p.serve(reqs) });
  }
  return { managers: m, prefixPool: pool };
}
