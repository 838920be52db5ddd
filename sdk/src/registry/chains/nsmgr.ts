/**
 * The registry proxy an nsmgr serves to the endpoints and forwarders of its node, and the views of it that the
 * nsmgr's own elements read. Endpoint Register/Unregister: validate → updatepath → begin → clientinfo → expire →
 * localbypass → connect (upstream registry): the registry publishes the nsmgr's URL, the nsmgr keeps the real
 * one (usually a unix socket only it can reach) and hands it back in Find results for its own endpoints.
 * Network services: validate → updatepath → begin → connect. Find passes through (with the localbypass rewrite).
 */
import type { NetworkService, NetworkServiceEndpoint } from "@nsm-ts/api/registry";
import type { Channel } from "@nsm-ts/base/grpc";
import type { TokenGenerator } from "@nsm-ts/base/token";
import * as authorize from "../common/authorize/index.js";
import * as begin from "../common/begin/index.js";
import * as clientinfo from "../common/clientinfo/index.js";
import * as connect from "../common/connect/index.js";
import * as expire from "../common/expire/index.js";
import * as localbypass from "../common/localbypass/index.js";
import * as updatepath from "../common/updatepath/index.js";
import * as validate from "../common/validate/index.js";
import { type FindResult, type NseHandler, type NsHandler, type RegistryElement, registryChain, registryHandler } from "../core/index.js";

/** Options of `createNsmgrRegistry`. */
export interface NsmgrRegistryOptions {
  /** The URL under which the nsmgr itself is reachable from other nodes (published for its endpoints). */
  nsmgrUrl: string;
  /** Channel to the upstream registry (or a function choosing one per call, e.g. after a redial). */
  registry: Channel | (() => Channel);
  /** Signs the nsmgr's registry path segments and per-RPC tokens. */
  tokenGenerator: TokenGenerator;
  /** Node/pod/cluster labels added to every service of a local endpoint. */
  clientInfo?: clientinfo.ClientInfoOptions;
  /** Longest registration lifetime without a refresh; default 60 000 ms (`NSM_EXPIRE_PERIOD`). */
  expirePeriodMs?: number;
  /** Elements in front of the upstream registry on the `local` (forwarder discovery) path, e.g. a `querycache`. */
  localCache?: RegistryElement<NetworkServiceEndpoint>[];
  /**
   * Elements in front of the upstream registry on the `nsLookup` path (the nsmgr's own network service look-ups),
   * e.g. a `querycache`; without any, `nsLookup` is `ns`.
   */
  nsCache?: RegistryElement<NetworkService>[];
}

/** The handlers of an nsmgr's registry proxy. */
export interface NsmgrRegistry {
  /** Network service registry to serve (and for discovery). */
  ns: NsHandler;
  /** Endpoint registry to serve: local endpoints come back with their real URLs. */
  nse: NseHandler;
  /**
   * Endpoints registered through this very nsmgr (its forwarders and local endpoints), with their real URLs;
   * what discoverforwarder reads so an nsmgr never picks another node's forwarder or dials itself.
   */
  local: NseHandler;
  /**
   * Network services for the nsmgr's own discovery (one look-up per Request): `nsCache` straight in front of the
   * upstream registry, without the path and authorization of a served call.
   */
  nsLookup: NsHandler;
}

function filter(keep: (e: NetworkServiceEndpoint) => boolean): RegistryElement<NetworkServiceEndpoint> {
  return {
    name: "nsmgr-local-filter",
    register: (ctx, e, next) => next.register(ctx, e),
    async *find(ctx, query, next): AsyncIterable<FindResult<NetworkServiceEndpoint>> {
      for await (const r of next.find(ctx, query)) if (keep(r.entry)) yield r;
    },
    unregister: (ctx, e, next) => next.unregister(ctx, e),
  };
}

/** The proxy leaves ownership to the registry; it checks only the path of its local registrants. */
const noOwners = async (): Promise<undefined> => undefined;

/** Builds the registry proxy of an nsmgr (see the header comment). */
export function createNsmgrRegistry(opts: NsmgrRegistryOptions): NsmgrRegistry {
  const gen = opts.tokenGenerator;
  const lb = localbypass.newServer<NetworkServiceEndpoint>(opts.nsmgrUrl);
  const upstreamNse = connect.newClient("nse", opts.registry, { tokenGenerator: gen });
  const nse = registryHandler(
    registryChain<NetworkServiceEndpoint>(
      // Our own endpoints that have not registered with this (restarted) nsmgr yet: their real URL is unknown,
      // and handing out our own URL would make a forwarder call us as if we were the endpoint.
      filter((e) => e.url !== opts.nsmgrUrl),
      validate.newServer(),
      updatepath.newServer(gen),
      begin.newServer(),
      // Local registrants register for themselves: their token must be theirs, alive and a one-hop path.
      authorize.newServer<NetworkServiceEndpoint>({ owners: noOwners, registrars: () => false }),
      clientinfo.newClient(opts.clientInfo ?? {}),
      expire.newServer(opts.expirePeriodMs === undefined ? {} : { expirePeriodMs: opts.expirePeriodMs }),
      lb,
      upstreamNse,
    ),
  );
  // Upstream entries published under our URL, then only those whose real URL we know (after a restart the
  // registry still lists our endpoints under our URL until they register with us again).
  const local = registryHandler(
    registryChain<NetworkServiceEndpoint>(
      filter((e) => e.url !== opts.nsmgrUrl),
      lb,
      filter((e) => e.url === opts.nsmgrUrl),
      ...(opts.localCache ?? []),
      upstreamNse,
    ),
  );
  const upstreamNs = connect.newClient("ns", opts.registry, { tokenGenerator: gen });
  const ns = registryHandler(
    registryChain<NetworkService>(
      validate.newServer(),
      updatepath.newServer(gen),
      begin.newServer(),
      authorize.newServer<NetworkService>({ owners: noOwners, registrars: () => false }),
      upstreamNs,
    ),
  );
  const nsLookup = opts.nsCache?.length ? registryHandler(registryChain<NetworkService>(...opts.nsCache, upstreamNs)) : ns;
  return { ns, nse, local, nsLookup };
}
