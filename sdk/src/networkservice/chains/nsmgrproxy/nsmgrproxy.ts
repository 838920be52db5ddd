/**
 * The nsmgr-proxy chain (one per domain, at its edge; cmd-nsmgr-proxy): the door connections and registrations
 * take between domains. A connection to `svc@domain-b` goes nsc → nsmgr → forwarder → nsmgr-proxy (A) →
 * nsmgr-proxy (B) → nsmgr → forwarder → nse (eight path segments).
 *
 * - NetworkService: loop guard → the hop head → interdomainbypass (an endpoint its registry knows goes to the URL
 *   it remembered: the other domain's proxy, or for a floating registration the local nsmgr; anything else is a
 *   local endpoint asked for as `nse@domain`, so `@domain` is stripped) → discover → roundrobin in the local
 *   registry (skipped when routed) → the hop tail. No refresh of its own: the forwarder before it refreshes.
 * - Registry (served to this domain's registry, its `NSM_PROXY_REGISTRY_URL`): endpoints updatepath → begin →
 *   interdomainbypass (publish this proxy's URL, remember the real one) → swapip → connect to the registry proxy
 *   that resolves domains (cmd-registry in proxy-dns mode); network services updatepath → begin → connect.
 */
import type { NetworkService, NetworkServiceEndpoint } from "@nsm-ts/api/registry";
import type { Clock } from "@nsm-ts/base/clock";
import { type Channel, dial, type NsmServer } from "@nsm-ts/base/grpc";
import type { Logger } from "@nsm-ts/base/log";
import * as regbegin from "../../../registry/common/begin/index.js";
import * as regconnect from "../../../registry/common/connect/index.js";
import * as reginterdomainbypass from "../../../registry/common/interdomainbypass/index.js";
import { InterdomainUrls } from "../../../registry/common/interdomainbypass/index.js";
import * as swapip from "../../../registry/common/swapip/index.js";
import * as regupdatepath from "../../../registry/common/updatepath/index.js";
import { type NseHandler, type NsHandler, registryChain, registryHandler } from "../../../registry/core/index.js";
import { serveRegistry } from "../../../registry/grpc/index.js";
import * as discover from "../../common/discover/index.js";
import * as interdomainbypass from "../../common/interdomainbypass/index.js";
import type { ConnectionMonitor } from "../../common/monitor/index.js";
import * as roundrobin from "../../common/roundrobin/index.js";
import { chain } from "../../core/chain.js";
import { type ServeOptions, serveNetworkService } from "../../core/serve.js";
import type { NetworkServiceElement } from "../../core/types.js";
import { type HopOptions, hopDialOptions, hopParts, hopQueryCache } from "../hop/parts.js";

/** Options of `createNsmgrProxy`. */
export interface NsmgrProxyOptions extends HopOptions {
  /** The URL this proxy is reached at (`NSM_LISTEN_ON` as others see it): published for endpoints it fronts. */
  url: string;
  /** This domain's registry (`NSM_REGISTRY_URL`): where a local endpoint is discovered. */
  registryUrl: string;
  /** The registry proxy resolving other domains (`NSM_REGISTRY_PROXY_URL`). */
  registryProxyUrl: string;
  /** Internal ↔ external address map for published URLs (`NSM_MAP_IP_FILE_PATH`, read per call); default none. */
  ipMap?: swapip.IpMapSource;
  /** Clock of the discovery caches; default the real one. */
  clock?: Clock;
  /** Logger of background work; default silent. */
  log?: Logger;
}

/** A built nsmgr-proxy. */
export interface NsmgrProxy {
  /** The NetworkService chain. */
  readonly element: NetworkServiceElement;
  /** Its connections (MonitorConnection). */
  readonly monitor: ConnectionMonitor;
  /** The registry it serves to its domain's registry. */
  readonly registry: { ns: NsHandler; nse: NseHandler };
  /** Endpoints it routes to by remembered URL. */
  readonly urls: InterdomainUrls;
  /** Adds NetworkService, MonitorConnection and both registry services to `server`. */
  serve(server: NsmServer, opts?: ServeOptions): void;
  /** Stops background work and closes every channel. */
  close(): void;
}

/** Builds an nsmgr-proxy (see the header comment). */
export function createNsmgrProxy(opts: NsmgrProxyOptions): NsmgrProxy {
  const lifetime = new AbortController();
  const parts = hopParts(opts);
  const gen = opts.tokenGenerator;
  const urls = new InterdomainUrls();
  const dialOpts = hopDialOptions(opts.dialOptions);
  const local: Channel = dial(opts.registryUrl, dialOpts);
  const proxy: Channel = dial(opts.registryProxyUrl, dialOpts);
  const ipMap = opts.ipMap ?? (() => ({}));
  const discovery = {
    nse: registryHandler(
      registryChain<NetworkServiceEndpoint>(
        ...hopQueryCache<NetworkServiceEndpoint>(opts, lifetime.signal),
        regconnect.newClient("nse", local, { tokenGenerator: gen }),
      ),
    ),
    ns: registryHandler(
      registryChain<NetworkService>(
        ...hopQueryCache<NetworkService>(opts, lifetime.signal),
        regconnect.newClient("ns", local, { tokenGenerator: gen }),
      ),
    ),
  };
  const element = chain(
    interdomainbypass.newLoopGuard(opts.name),
    ...parts.head,
    interdomainbypass.newServer(urls),
    interdomainbypass.unlessRouted(chain(discover.newServer(discovery), roundrobin.newServer())),
    ...parts.tail,
  );
  const registry = {
    nse: registryHandler(
      registryChain<NetworkServiceEndpoint>(
        regupdatepath.newServer(gen),
        regbegin.newServer(),
        reginterdomainbypass.newServer(urls, opts.url),
        swapip.newServer(ipMap),
        regconnect.newClient("nse", proxy, { tokenGenerator: gen }),
      ),
    ),
    ns: registryHandler(
      registryChain<NetworkService>(
        regupdatepath.newServer(gen),
        regbegin.newServer(),
        regconnect.newClient("ns", proxy, { tokenGenerator: gen }),
      ),
    ),
  };
  return {
    element,
    monitor: parts.connections,
    registry,
    urls,
    serve(server, serveOpts = {}) {
      serveNetworkService(server, element, parts.monitorServer, serveOpts);
      serveRegistry(server, registry, serveOpts);
    },
    close() {
      lifetime.abort();
      parts.dispose();
      local.close();
      proxy.close();
    },
  };
}
