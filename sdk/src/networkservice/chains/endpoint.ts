/**
 * The standard endpoint chain (what an NSE serves): validate (limits) → endpoint-validate → updatepath → begin → updatetoken → authorize
 * → metadata → [timeout] → monitor → trimpath → …additional. `additional` holds the endpoint's own
 * elements (mechanisms, IPAM, …) or, for a passthrough endpoint, a client chain to the next hop. See
 * README.md for why the elements sit where they do.
 */

import type { Clock } from "@nsm-ts/base/clock";
import type { NsmServer } from "@nsm-ts/base/grpc";
import type { Logger } from "@nsm-ts/base/log";
import type { PathPolicyInput, Policy } from "@nsm-ts/base/policy";
import { Code, fail } from "@nsm-ts/base/status";
import type { TokenGenerator } from "@nsm-ts/base/token";
import * as authorize from "../common/authorize/index.js";
import * as begin from "../common/begin/index.js";
import * as metadata from "../common/metadata/index.js";
import * as monitor from "../common/monitor/index.js";
import * as timeout from "../common/timeout/index.js";
import * as trimpath from "../common/trimpath/index.js";
import * as updatepath from "../common/updatepath/index.js";
import * as updatetoken from "../common/updatetoken/index.js";
import * as limits from "../common/validate/index.js";
import { chain } from "../core/chain.js";
import { serveNetworkService } from "../core/serve.js";
import type { NetworkServiceElement } from "../core/types.js";

/** Options of `endpoint`. */
export interface EndpointOptions {
  /** The endpoint's name: its path segment name (and, by convention, its registered NSE name). */
  name: string;
  /** Makes this hop's path-segment tokens. */
  tokenGenerator: TokenGenerator;
  /** Path policies of `authorize`; default the server set (tokens valid, previous token signed, unexpired, chained). */
  policies?: readonly Policy<PathPolicyInput>[];
  /** The insecure dev mode (no certificates): signatures and audiences are not enforced. Default false. */
  insecure?: boolean;
  /**
   * Whether a peer (SPIFFE ID) may send a path that began with another workload (authorize,
   * `first_segment_caller`); default `isMeshHopId` (an nsmgr or forwarder, the hops an endpoint is called by).
   */
  trustedHops?: (spiffeId: string) => boolean;
  /** The endpoint's own elements, run after the standard ones; default none. */
  additional?: NetworkServiceElement[];
  /** Close connections whose caller stopped refreshing (`true`, the default, or its options); `false` turns it off. */
  timeout?: boolean | timeout.TimeoutOptions;
  /** Options of the MonitorConnections server. */
  monitor?: monitor.ConnectionMonitorOptions;
  /** Clock of the chain (timeouts, token expiry checks); default the real clock. */
  clock?: Clock;
  /** Base logger of served calls; default silent. */
  log?: Logger;
}

/** A built endpoint: its chain, its connection monitor, and a way to serve both. */
export interface Endpoint {
  /** The endpoint's name. */
  readonly name: string;
  /** The whole chain as one element. */
  readonly element: NetworkServiceElement;
  /** The connections this endpoint holds, and the MonitorConnections server for them. */
  readonly monitor: monitor.ConnectionMonitor;
  /**
   * Adds this endpoint's gRPC services (NetworkService, MonitorConnection) to `server`; call before `listen`. Named
   * so as not to be confused with registering the endpoint in the registry (see `createRegistrar`).
   */
  serve(server: NsmServer): void;
}

/**
 * Rejects a Request without a connection before updatepath would invent one: an endpoint is never the first
 * hop of a path, so such a request is malformed rather than new.
 */
const validate: NetworkServiceElement = {
  name: "endpoint-validate",
  request(ctx, req, next) {
    if (!req.connection) fail(Code.InvalidArgument, "endpoint: request.connection is missing");
    return next.request(ctx, req);
  },
  close: (ctx, conn, next) => next.close(ctx, conn),
};

/** Builds the standard endpoint chain. */
export function endpoint(opts: EndpointOptions): Endpoint {
  const connections = new monitor.ConnectionMonitor(opts.monitor);
  const auth: authorize.AuthorizeOptions = { insecure: opts.insecure ?? false };
  if (opts.policies) auth.policies = opts.policies;
  if (opts.trustedHops) auth.trustedHops = opts.trustedHops;
  const elements: NetworkServiceElement[] = [
    limits.newServer(),
    validate,
    updatepath.newServer(opts.name),
    begin.newServer(),
    updatetoken.newServer(opts.tokenGenerator),
    authorize.newServer(auth),
    metadata.newServer(),
  ];
  if (opts.timeout !== false) elements.push(timeout.newServer(opts.timeout === true || opts.timeout === undefined ? {} : opts.timeout));
  elements.push(monitor.newServer(connections), trimpath.newServer(), ...(opts.additional ?? []));
  const element = chain(...elements);
  const serveOpts = { ...(opts.clock ? { clock: opts.clock } : {}), ...(opts.log ? { log: opts.log } : {}) };
  return {
    name: opts.name,
    element,
    monitor: connections,
    // Outside the dev mode a peer may only watch the connections it created (monitor authorize).
    serve: (server) =>
      serveNetworkService(server, element, opts.insecure ? connections : authorize.newMonitorServer(connections), serveOpts),
  };
}
