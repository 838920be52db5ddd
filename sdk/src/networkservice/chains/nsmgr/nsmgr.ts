/**
 * The nsmgr chain (one per node): an endpoint's lifecycle elements, then clientinfo (labels of local clients)
 * → discoverforwarder (a forwarder of this node, sticky) → excludedprefixes → the client tail to the chosen
 * forwarder. It never picks the NSE: the forwarder does. It also serves MonitorConnection (its connections, with
 * DOWN when a next hop dies) and a registry proxy for the endpoints and forwarders of its node (localbypass,
 * expire; see `createNsmgrRegistry`).
 */

import type { NetworkService, NetworkServiceEndpoint } from "@nsm-ts/api/registry";
import { type Channel, dial, type NsmServer } from "@nsm-ts/base/grpc";
import { createNsmgrRegistry, type NsmgrRegistry } from "../../../registry/chains/nsmgr.js";
import { serveRegistry } from "../../../registry/grpc/index.js";
import * as clientinfo from "../../common/clientinfo/index.js";
import * as discoverforwarder from "../../common/discoverforwarder/index.js";
import * as excludedprefixes from "../../common/excludedprefixes/index.js";
import type { ConnectionMonitor } from "../../common/monitor/index.js";
import { chain } from "../../core/chain.js";
import { type ServeOptions, serveNetworkService } from "../../core/serve.js";
import type { NetworkServiceElement } from "../../core/types.js";
import { newFailover } from "../hop/failover.js";
import { type HopOptions, hopDialOptions, hopParts, hopQueryCache } from "../hop/parts.js";

/** Options of `createNsmgr`. */
export interface NsmgrOptions extends HopOptions {
  /** The URL other nodes reach this nsmgr at; the registry publishes it for the endpoints of this node. */
  url: string;
  /** The registry (`tcp://host:port` or `unix:///path`). */
  registryUrl: string;
  /** Labels for local clients' connections and local endpoints' registrations (NODE_NAME, POD_NAME, CLUSTER_NAME). */
  clientInfo?: clientinfo.ClientInfoOptions;
  /** Longest registration lifetime without a refresh; default 60 000 ms. */
  expirePeriodMs?: number;
  /** Forwarders register under this network service; default `forwarder`. */
  forwarderServiceName?: string;
  /**
   * Excluded prefixes file options, or false for none; default the standard file
   * (`/var/lib/networkservicemesh/config/excluded_prefixes.yaml`), watched until `close()`.
   */
  excludedPrefixes?: Omit<excludedprefixes.ExcludedPrefixesServerOptions, "signal"> | false;
  /** Extra elements placed right before the client tail (tests, metrics). */
  additional?: NetworkServiceElement[];
}

/** A built nsmgr: its chain, monitor and registry proxy, ready to serve. */
export interface Nsmgr {
  /** The NetworkService chain. */
  readonly element: NetworkServiceElement;
  /** The MonitorConnection server (this nsmgr's connections). */
  readonly monitor: ConnectionMonitor;
  /** The registry proxy (served for local endpoints and forwarders). */
  readonly registry: NsmgrRegistry;
  /** Adds NetworkService, MonitorConnection and both registry services to `server` (the gRPC services, not a registration). */
  serve(server: NsmServer, opts?: ServeOptions): void;
  /**
   * Resolves once the channel to the registry is connected (connecting if idle, waiting through failed attempts
   * and the reconnect backoff); `DeadlineExceeded` at `deadline`. For readiness checks, and for waiting out a
   * registry restart.
   */
  registryReady(deadline: Date | number, signal?: AbortSignal): Promise<void>;
  /** Stops background work (next-hop watches, file watch) and closes every channel it opened. */
  close(): void;
}

/** Builds an nsmgr (see the header comment). */
export function createNsmgr(opts: NsmgrOptions): Nsmgr {
  const lifetime = new AbortController();
  const parts = hopParts(opts);
  const registryChannel: Channel = dial(opts.registryUrl, hopDialOptions(opts.dialOptions));
  const registry = createNsmgrRegistry({
    nsmgrUrl: opts.url,
    registry: registryChannel,
    tokenGenerator: opts.tokenGenerator,
    ...(opts.clientInfo === undefined ? {} : { clientInfo: opts.clientInfo }),
    ...(opts.expirePeriodMs === undefined ? {} : { expirePeriodMs: opts.expirePeriodMs }),
    // Forwarder selection reads the registry on every Request: from a watch-fed cache instead.
    localCache: hopQueryCache<NetworkServiceEndpoint>(opts, lifetime.signal),
    // So does its network service look-up (the forwarder labels a service's matches ask for).
    nsCache: hopQueryCache<NetworkService>(opts, lifetime.signal),
  });
  const middle: NetworkServiceElement[] = [
    clientinfo.newServer(opts.clientInfo ?? {}),
    newFailover("nsmgr"),
    discoverforwarder.newServer(
      { ns: registry.nsLookup, nse: registry.local },
      opts.forwarderServiceName === undefined ? {} : { forwarderServiceName: opts.forwarderServiceName },
    ),
  ];
  if (opts.excludedPrefixes !== false)
    middle.push(excludedprefixes.newServer({ ...(opts.excludedPrefixes ?? {}), signal: lifetime.signal }));
  const element = chain(...parts.head, ...middle, ...(opts.additional ?? []), ...parts.tail);
  return {
    element,
    monitor: parts.connections,
    registry,
    serve(server, serveOpts = {}) {
      serveNetworkService(server, element, parts.monitorServer, serveOpts);
      serveRegistry(server, { ns: registry.ns, nse: registry.nse }, serveOpts);
    },
    registryReady: (deadline, signal) => registryChannel.ready(deadline, signal, { waitForReady: true }),
    close() {
      lifetime.abort();
      parts.dispose();
      registryChannel.close();
    },
  };
}
