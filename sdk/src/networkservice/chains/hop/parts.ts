/**
 * The server head and client tail shared by the nsmgr and forwarder chains: both are servers whose tail is a
 * client to the next hop. Head: validate (limits) → updatepath → begin → metadata → updatetoken → authorize → timeout → monitor →
 * trimpath (an endpoint's lifecycle elements). Tail: serverview (this hop's id and index back on the way out) →
 * trimpath client (a hop that forwards does not trim) →
 * next-hop monitor → updatetoken client → authorize client → connect.
 */

import type { Clock } from "@nsm-ts/base/clock";
import { ChannelPool } from "@nsm-ts/base/dialer";
import type { DialOptions } from "@nsm-ts/base/grpc";
import type { Logger } from "@nsm-ts/base/log";
import type { TokenGenerator } from "@nsm-ts/base/token";
import type { QueryCacheOptions } from "../../../registry/common/querycache/index.js";
import * as querycache from "../../../registry/common/querycache/index.js";
import type { RegistryElement, RegistryEntry } from "../../../registry/core/index.js";
import * as authorize from "../../common/authorize/index.js";
import * as begin from "../../common/begin/index.js";
import * as connect from "../../common/connect/index.js";
import * as metadata from "../../common/metadata/index.js";
import * as monitor from "../../common/monitor/index.js";
import * as timeout from "../../common/timeout/index.js";
import * as trimpath from "../../common/trimpath/index.js";
import * as updatepath from "../../common/updatepath/index.js";
import * as updatetoken from "../../common/updatetoken/index.js";
import * as validate from "../../common/validate/index.js";
import type { MonitorConnectionServer, NetworkServiceElement } from "../../core/types.js";
import { type NextHopMonitor, newNextHopMonitor } from "./nexthop.js";
import { newServerView } from "./serverview.js";

/**
 * How long a hop keeps the channel to a next hop without a connection on it: connections that come and go one at
 * a time reuse its HTTP/2 connection instead of dialing for each (real-clock timers, unref'd; `dispose` ends them).
 */
export const CHANNEL_IDLE_MS = 30_000;

/** Options common to the nsmgr and forwarder chains. */
export interface HopOptions {
  /** This hop's name in connection paths (and registrations). */
  name: string;
  /** Makes this hop's tokens (path segments and per-RPC tokens). */
  tokenGenerator: TokenGenerator;
  /**
   * Insecure dev mode: tokens are checked for format and expiry only, not for signatures and
   * audiences. Default false.
   */
  insecure?: boolean;
  /**
   * Whether a peer (SPIFFE ID) may forward a path that began with another workload (authorize,
   * `first_segment_caller`); default `isMeshHopId` (an nsmgr or forwarder).
   */
  trustedHops?: (spiffeId: string) => boolean;
  /** How the hop dials its next hops (TLS, interceptors); default insecure. */
  dialOptions?: DialOptions;
  /** Timeout of a call to the next hop when the incoming call has no deadline; default 15 000 ms. */
  requestTimeoutMs?: number;
  /**
   * Discovery Finds answered from watch-fed caches (registry `querycache`) instead of a registry round trip per
   * Request; `false` turns the caches off. Default on, with the element's defaults.
   */
  queryCache?: false | Pick<QueryCacheOptions, "expireTimeoutMs" | "maxQueries">;
}

/** What `hopParts` builds. */
export interface HopParts {
  connections: monitor.ConnectionMonitor;
  /** What the hop serves as MonitorConnection: `connections` behind monitor authorize (outside the dev mode). */
  monitorServer: MonitorConnectionServer;
  head: NetworkServiceElement[];
  tail: NetworkServiceElement[];
  nexthop: NextHopMonitor;
  /** Stops next-hop watches and every connection's timers, and closes every channel. */
  dispose(): void;
}

/**
 * grpc-js waits 1 s (growing to 2 min) before reconnecting to a peer that went away; a hop must reach a restarted
 * next hop, registry or nsmgr within a fraction of a second, so its channels retry sooner unless told otherwise.
 */
export function hopDialOptions(opts: DialOptions | undefined): DialOptions {
  return {
    ...opts,
    grpcOptions: { "grpc.initial_reconnect_backoff_ms": 100, "grpc.max_reconnect_backoff_ms": 1000, ...opts?.grpcOptions },
  };
}

/** The hop's discovery cache element bound to its lifetime, as a list to spread into a chain (empty when off). */
export function hopQueryCache<T extends RegistryEntry>(
  opts: HopOptions & { clock?: Clock; log?: Logger },
  signal: AbortSignal,
): RegistryElement<T>[] {
  if (opts.queryCache === false) return [];
  const cache = querycache.newClient<T>({
    ...opts.queryCache,
    signal,
    ...(opts.clock === undefined ? {} : { clock: opts.clock }),
    ...(opts.log === undefined ? {} : { log: opts.log }),
  });
  return [cache];
}

/** Builds the head and tail of a forwarding hop. */
export function hopParts(opts: HopOptions): HopParts {
  // Ends every connection's background work (expiry timers) once the hop is disposed.
  const lifetime = new AbortController();
  const connections = new monitor.ConnectionMonitor();
  const pool = new ChannelPool(hopDialOptions(opts.dialOptions), { idleMs: CHANNEL_IDLE_MS });
  const insecure = opts.insecure ?? false;
  const gen = opts.tokenGenerator;
  const nexthop = newNextHopMonitor(connections, { pool, tokenGenerator: gen });
  const conn = connect.newClient({
    tokenGenerator: gen,
    pool,
    ...(opts.requestTimeoutMs === undefined ? {} : { defaultTimeoutMs: opts.requestTimeoutMs }),
  });
  return {
    connections,
    // Outside the dev mode a peer sees only connections whose path carries its identity (monitor authorize).
    monitorServer: insecure ? connections : authorize.newMonitorServer(connections),
    nexthop,
    head: [
      validate.newServer(),
      updatepath.newServer(opts.name),
      begin.newServer({ signal: lifetime.signal }),
      metadata.newServer(),
      updatetoken.newServer(gen),
      authorize.newServer({ insecure, ...(opts.trustedHops === undefined ? {} : { trustedHops: opts.trustedHops }) }),
      timeout.newServer(),
      monitor.newServer(connections),
      trimpath.newServer(),
    ],
    tail: [newServerView(), trimpath.newClient(), nexthop, updatetoken.newClient(gen), authorize.newClient({ insecure }), conn],
    dispose() {
      lifetime.abort();
      nexthop.dispose();
      pool.closeAll();
    },
  };
}
