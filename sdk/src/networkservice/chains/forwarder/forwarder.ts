/**
 * The forwarder chain (one per node): an endpoint's lifecycle elements, then discover → roundrobin (it picks the
 * NSE, through the registry proxy of its nsmgr, so local endpoints come with their real URLs and remote ones
 * with their nsmgr's) → mechanisms (the data plane, per mechanism type; NOOP by default) → the client tail:
 * mechanismtranslation and the client mechanisms offered to the next hop, then the shared tail. It registers
 * itself as an endpoint of network service `forwarder` with labels `p2p: true`, kept fresh until `close()`.
 */
import { create } from "@bufbuild/protobuf";
import { FORWARDER_NETWORK_SERVICE, Label } from "@nsm-ts/api/constants";
import {
  type NetworkService,
  type NetworkServiceEndpoint,
  NetworkServiceEndpointSchema,
  NetworkServiceLabelsSchema,
} from "@nsm-ts/api/registry";
import type { Clock } from "@nsm-ts/base/clock";
import { CallContext } from "@nsm-ts/base/context";
import { type Channel, dial, type NsmServer } from "@nsm-ts/base/grpc";
import { type Logger, silentLogger } from "@nsm-ts/base/log";
import { createRegistryClient } from "../../../registry/chains/index.js";
import * as regconnect from "../../../registry/common/connect/index.js";
import { registryChain, registryHandler } from "../../../registry/core/index.js";
import * as discover from "../../common/discover/index.js";
import * as mechanisms from "../../common/mechanisms/index.js";
import * as mechanismtranslation from "../../common/mechanismtranslation/index.js";
import type { ConnectionMonitor } from "../../common/monitor/index.js";
import * as roundrobin from "../../common/roundrobin/index.js";
import { chain, passThrough } from "../../core/chain.js";
import { type ServeOptions, serveNetworkService } from "../../core/serve.js";
import type { NetworkServiceElement } from "../../core/types.js";
import { newFailover } from "../hop/failover.js";
import { type HopOptions, hopDialOptions, hopParts, hopQueryCache } from "../hop/parts.js";

/** Options of `createForwarder`. */
export interface ForwarderOptions extends HopOptions {
  /** The URL this forwarder is reachable at (registered; its nsmgr keeps it and publishes its own). */
  url: string;
  /** Its nsmgr (`NSM_CONNECT_TO`): registry proxy for discovery and registration. */
  nsmgrUrl: string;
  /** Registration labels; default `{ p2p: "true" }`. */
  labels?: Readonly<Record<string, string>>;
  /** Network service forwarders register under; default `forwarder`. */
  forwarderServiceName?: string;
  /**
   * Server-side data plane per mechanism type of the incoming connection (e.g. `{ KERNEL: kernelServer }`);
   * default `{ NOOP: <pass through> }`.
   */
  mechanisms?: mechanisms.MechanismElements;
  /** Client elements offering mechanisms to the next hop; default `[noop.newClient()]`. */
  clientMechanisms?: NetworkServiceElement[];
  /** Clock of the registration refresh; default the real clock. */
  clock?: Clock;
  /** Logger of background work; default silent. */
  log?: Logger;
}

/** A built forwarder. */
export interface Forwarder {
  /** The NetworkService chain. */
  readonly element: NetworkServiceElement;
  /** The MonitorConnection server (this forwarder's connections). */
  readonly monitor: ConnectionMonitor;
  /** Adds NetworkService and MonitorConnection to `server` (the gRPC services; `register` is the registry entry). */
  serve(server: NsmServer, opts?: ServeOptions): void;
  /** Registers the forwarder and keeps the registration fresh (and healed) until `close()`. */
  register(): Promise<NetworkServiceEndpoint>;
  /** Stops background work and closes channels; with `unregister`, removes the registration first. */
  close(opts?: { unregister?: boolean }): Promise<void>;
}

/** Deadline of the Unregister that `close({ unregister: true })` sends, in ms. */
export const UNREGISTER_TIMEOUT_MS = 1000;

/** Builds a forwarder (see the header comment). */
export function createForwarder(opts: ForwarderOptions): Forwarder {
  const lifetime = new AbortController();
  const parts = hopParts(opts);
  const service = opts.forwarderServiceName ?? FORWARDER_NETWORK_SERVICE;
  const nsmgr: Channel = dial(opts.nsmgrUrl, hopDialOptions(opts.dialOptions));
  const gen = opts.tokenGenerator;
  // Discovery (two Finds per Request) is answered from watch-fed caches: no registry round trip on the hot path.
  const registries = {
    nse: registryHandler(
      registryChain<NetworkServiceEndpoint>(
        ...hopQueryCache<NetworkServiceEndpoint>(opts, lifetime.signal),
        regconnect.newClient("nse", nsmgr, { tokenGenerator: gen }),
      ),
    ),
    ns: registryHandler(
      registryChain<NetworkService>(
        ...hopQueryCache<NetworkService>(opts, lifetime.signal),
        regconnect.newClient("ns", nsmgr, { tokenGenerator: gen }),
      ),
    ),
  };
  const registration = createRegistryClient("nse", nsmgr, { tokenGenerator: gen, signal: lifetime.signal, heal: true });
  const entry = create(NetworkServiceEndpointSchema, {
    name: opts.name,
    url: opts.url,
    networkServiceNames: [service],
    networkServiceLabels: { [service]: create(NetworkServiceLabelsSchema, { labels: { ...(opts.labels ?? { [Label.P2P]: "true" }) } }) },
  });
  const ctx = (): CallContext =>
    CallContext.create({ log: opts.log ?? silentLogger, ...(opts.clock === undefined ? {} : { clock: opts.clock }) });
  const element = chain(
    ...parts.head,
    newFailover("forwarder"),
    discover.newServer(registries),
    roundrobin.newServer(),
    mechanisms.newServer(opts.mechanisms ?? { NOOP: passThrough }),
    mechanismtranslation.newClient(),
    ...(opts.clientMechanisms ?? [mechanisms.noop.newClient()]),
    ...parts.tail,
  );
  return {
    element,
    monitor: parts.connections,
    serve(server, serveOpts = {}) {
      serveNetworkService(server, element, parts.monitorServer, serveOpts);
    },
    register: () => registration.register(ctx(), entry),
    async close({ unregister = false } = {}) {
      try {
        // A drain is short: when the nsmgr is gone too, the registration expires on its own.
        if (unregister) {
          const c = ctx();
          await registration.unregister(c.withDeadline(c.clock.now() + UNREGISTER_TIMEOUT_MS), entry);
        }
      } finally {
        lifetime.abort();
        parts.dispose();
        nsmgr.close();
      }
    },
  };
}
