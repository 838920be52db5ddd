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
  DnsRecordManager,
  IpAddressManager,
  MacAddressManager,
  NetworkManager,
  NodeManager,
  PortManager,
  RouteTableManager,
  SecurityGroupManager,
  SubnetManager,
  VirtualIpManager,
} from "@nsm-ts/api/resources";
import type { Clock } from "@nsm-ts/base/clock";
import { type ConnectRoute, connectRoute } from "@nsm-ts/base/connect";
import { contextFromCall } from "@nsm-ts/base/context";
import type { NsmServer, ServerCallContext } from "@nsm-ts/base/grpc";
import { type Logger, silentLogger } from "@nsm-ts/base/log";
import { Code, fail } from "@nsm-ts/base/status";
import { resourceHandlers } from "./handlers.js";
import { ResourceManagers } from "./managers.js";
import { createPrefixPool, type PrefixPool, type PrefixPoolOptions } from "./prefix-pool.js";
import type { ResourceStore, WriteCaller } from "./store.js";

/** Options of `registerResourceManagers`. */
export interface RegisterResourceManagersOptions {
  /** Where records live (`createMemoryResourceStore()` or `createEtcdResourceStore(...)`). */
  store: ResourceStore;
  /** Time source of node heartbeats and the health sweep; default the real clock. */
  clock?: Clock;
  /** Time without a heartbeat after which a node goes out of service; default 30 s. */
  heartbeatTimeoutMs?: number;
  /** When given, nodes whose heartbeats stopped are swept out of service (every third of the timeout) until it aborts. */
  signal?: AbortSignal;
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
  /** The Watch calls' buffer size, for the Connect routes of the same managers. */
  readonly watchBufferSize?: number | undefined;
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
  const m = new ResourceManagers({
    store: opts.store,
    log,
    ...(opts.macOui === undefined ? {} : { macOui: opts.macOui }),
    ...(opts.clock === undefined ? {} : { clock: opts.clock }),
    ...(opts.heartbeatTimeoutMs === undefined ? {} : { heartbeatTimeoutMs: opts.heartbeatTimeoutMs }),
  });
  const h = resourceHandlers(m, callerOf, opts.watchBufferSize);
  server.addService(NetworkManager, h.networks);
  server.addService(SubnetManager, h.subnets);
  server.addService(IpAddressManager, h.ips);
  server.addService(MacAddressManager, h.macs);
  server.addService(PortManager, h.ports);
  server.addService(SecurityGroupManager, h.securityGroups);
  server.addService(RouteTableManager, h.routeTables);
  server.addService(VirtualIpManager, h.vips);
  server.addService(DnsRecordManager, h.dns);
  server.addService(NodeManager, h.nodes);
  if (opts.signal !== undefined) m.nodes.startHealth(opts.signal);

  let pool: PrefixPool | undefined;
  if (opts.prefixPool !== undefined) {
    const p = "serve" in opts.prefixPool ? opts.prefixPool : createPrefixPool(opts.prefixPool);
    pool = p;
    server.addService(IPAM, { managePrefixes: (reqs) => p.serve(reqs) });
  }
  return { managers: m, prefixPool: pool, watchBufferSize: opts.watchBufferSize };
}

/** Options of `resourceConnectRoutes`. */
export interface ResourceConnectOptions {
  /**
   * False (the default when the gRPC side has certificates): Connect calls carry no identity, so writes fail with
   * PermissionDenied and only reads and watches are served. True: writes are made without an identity, as in the
   * insecure dev mode (records get no creator and anyone may change records without one).
   */
  anonymousWrites: boolean;
}

/**
 * The same managers as Connect routes (`createConnectHandler` of `@nsm-ts/base/connect`), for JSON over HTTP:
 * `curl -H 'content-type: application/json' -d '{"id":"n1"}' http://host:port/nsmts.resources.v1.NetworkManager/CreateNetwork`.
 */
export function resourceConnectRoutes(registered: RegisteredResourceManagers, opts: ResourceConnectOptions): ConnectRoute[] {
  const callerOf = (): WriteCaller | undefined => {
    if (opts.anonymousWrites) return undefined;
    return fail(
      Code.PermissionDenied,
      "resources: policy record_creator denied: a Connect (HTTP) call has no identity; write over gRPC with mTLS",
    );
  };
  const h = resourceHandlers(registered.managers, callerOf, registered.watchBufferSize);
  return [
    connectRoute(NetworkManager, h.networks),
    connectRoute(SubnetManager, h.subnets),
    connectRoute(IpAddressManager, h.ips),
    connectRoute(MacAddressManager, h.macs),
    connectRoute(PortManager, h.ports),
    connectRoute(SecurityGroupManager, h.securityGroups),
    connectRoute(RouteTableManager, h.routeTables),
    connectRoute(VirtualIpManager, h.vips),
    connectRoute(DnsRecordManager, h.dns),
    connectRoute(NodeManager, h.nodes),
  ];
}
