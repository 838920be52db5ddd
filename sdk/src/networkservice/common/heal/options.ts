/** heal: the element's options, their defaults, and the capped, jittered exponential backoff between attempts. */
import type { Clock } from "@nsm-ts/base/clock";
import type { ChannelPool } from "@nsm-ts/base/dialer";
import type { Logger } from "@nsm-ts/base/log";
import type { TokenGenerator } from "@nsm-ts/base/token";
import type { LivenessCheck } from "./liveness.js";
import { type EndpointLookup, grpcEndpointLookup } from "./lookup.js";
import { grpcMonitorSource, type MonitorSource } from "./monitor.js";
import type { HealStatus } from "./status.js";

/** Options of the heal client. */
export interface HealOptions {
  /** Pool the monitor streams are opened on; pass connect's pool so one channel per next hop serves both. Default: own pool. */
  pool?: ChannelPool;
  /** Sends our token (`nsm-client-token`) on the monitor stream; default none. */
  tokenGenerator?: TokenGenerator;
  /** Clock of the shared monitor streams' timers (join grace, reopen timeout); default the real clock. */
  clock?: Clock;
  /** Logger of the shared monitor streams (per-connection lines go to the chain's logger); default silent. */
  log?: Logger;
  /** Replaces the gRPC monitor stream (tests, or a next hop in the same process). */
  monitorSource?: MonitorSource;
  /** Data-path liveness check; default none (only the control plane is watched). */
  livenessCheck?: LivenessCheck;
  /** Time between liveness checks; default 200 ms. */
  livenessCheckIntervalMs?: number;
  /** A liveness check still running after this long counts as failed; default 1 000 ms. */
  livenessCheckTimeoutMs?: number;
  /**
   * Delay after the first failed heal attempt (the first attempt is immediate); it doubles per failure up to
   * `maxRetryDelayMs`. Default 200 ms (upstream's attempt interval).
   */
  minRetryDelayMs?: number;
  /** Cap of the doubling delay between heal attempts; default 5 000 ms. Heal never stops retrying on its own. */
  maxRetryDelayMs?: number;
  /**
   * Each delay is drawn from the doubled delay ± this fraction, so clients that lost the same hop do not retry in
   * lockstep: 0.2 (default) gives 160–240 ms after the first failure and 4–6 s at the cap. 0 turns jitter off.
   */
  retryJitter?: number;
  /** Random source in [0, 1) for the jitter (tests); default `Math.random`. */
  random?: () => number;
  /**
   * Fallback only: when the endpoint is still registered (or the registry cannot tell) but re-requests to it keep
   * failing for this long, ask with reselect instead, so a replacement under another name (a new pod of a
   * Deployment) takes over while the dead one's registration has not expired yet. Default 5 000 ms — longer than
   * an nsmgr or forwarder restart, which heal rides out on the same endpoint. An endpoint gone from the registry
   * is reselected right after the first failed re-request.
   */
  reselectAfterMs?: number;
  /**
   * Registry look-up after a failed re-request: is the endpoint still registered? Default: Find on the next hop's
   * `registry.NetworkServiceEndpointRegistry` (an nsmgr proxies its registry) over the monitor's pool; none when a
   * `monitorSource` replaces the gRPC stream and no lookup is given.
   */
  endpointLookup?: EndpointLookup;
  /** Time a registry look-up may take before it counts as "cannot tell"; default 1 000 ms. */
  endpointLookupTimeoutMs?: number;
  /** Told about each heal event (metrics count them): a heal starts, a connection healed, an attempt failed. */
  onEvent?: (event: HealEvent) => void;
  /** Told about every change of a connection's heal state (a user-visible status); default none. */
  onStatus?: (status: HealStatus) => void;
}

/** What `HealOptions.onEvent` reports. */
export type HealEvent = "started" | "healed" | "attempt_failed";

/** HealOptions with every default filled in and the monitor source built; resolved once by `newClient`. */
export interface ResolvedHealOptions {
  monitorSource: MonitorSource;
  livenessCheck: LivenessCheck | undefined;
  livenessCheckIntervalMs: number;
  livenessCheckTimeoutMs: number;
  minRetryDelayMs: number;
  maxRetryDelayMs: number;
  retryJitter: number;
  random: () => number;
  reselectAfterMs: number;
  endpointLookup: EndpointLookup | undefined;
  endpointLookupTimeoutMs: number;
  onEvent: (event: HealEvent) => void;
  onStatus: (status: HealStatus) => void;
}

/** Fills in the defaults; the monitor streams run on `ownPool` when the caller gave neither a pool nor a source. */
export function resolveOptions(opts: HealOptions, ownPool: ChannelPool | undefined): ResolvedHealOptions {
  const pool = opts.pool ?? ownPool;
  return {
    monitorSource:
      opts.monitorSource ??
      grpcMonitorSource(pool as ChannelPool, opts.tokenGenerator, {
        ...(opts.clock ? { clock: opts.clock } : {}),
        ...(opts.log ? { log: opts.log } : {}),
      }),
    livenessCheck: opts.livenessCheck,
    livenessCheckIntervalMs: opts.livenessCheckIntervalMs ?? 200,
    livenessCheckTimeoutMs: opts.livenessCheckTimeoutMs ?? 1000,
    minRetryDelayMs: opts.minRetryDelayMs ?? 200,
    maxRetryDelayMs: opts.maxRetryDelayMs ?? 5_000,
    retryJitter: Math.min(Math.max(opts.retryJitter ?? 0.2, 0), 1),
    random: opts.random ?? Math.random,
    reselectAfterMs: opts.reselectAfterMs ?? 5_000,
    endpointLookup:
      opts.endpointLookup ?? (opts.monitorSource === undefined && pool ? grpcEndpointLookup(pool, opts.tokenGenerator) : undefined),
    endpointLookupTimeoutMs: opts.endpointLookupTimeoutMs ?? 1_000,
    onEvent: opts.onEvent ?? (() => undefined),
    onStatus: opts.onStatus ?? (() => undefined),
  };
}

/** The delay before attempt `attempt + 1`: min × 2^(attempt−1), capped, ± the jitter fraction. */
export function retryDelayMs(
  attempt: number,
  opts: Pick<ResolvedHealOptions, "minRetryDelayMs" | "maxRetryDelayMs" | "retryJitter" | "random">,
): number {
  const base = Math.min(opts.minRetryDelayMs * 2 ** Math.min(attempt - 1, 30), opts.maxRetryDelayMs);
  return Math.max(0, Math.round(base * (1 + opts.retryJitter * (2 * opts.random() - 1))));
}
