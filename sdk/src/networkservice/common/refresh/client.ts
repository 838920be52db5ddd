/**
 * refresh (client): keeps a connection alive by re-Requesting it before the tokens on its path expire.
 * After every successful Request it schedules a re-Request (through begin's EventFactory, so it is
 * serialised with everything else on the connection) at a point in [0.2, 0.4] × the shortest remaining
 * lifetime among the path segments' `expires`; a failed refresh is retried every `retryIntervalMs` until
 * that expiry. Close stops it; another Request replaces the schedule; a failed Request schedules nothing.
 *
 * Reads: `path.path_segments[*].expires` of the returned connection, `ctx.clock`. Writes: its timer in
 * `ctx.metadata.client`. Placement: client chains, after `begin` and `metadata`, before the elements that
 * fill the expiries (updatetoken, the next hop).
 */

import type { Connection } from "@nsm-ts/api/networkservice";
import type { Clock, Timer } from "@nsm-ts/base/clock";
import { type MetadataMap, MetaKey } from "@nsm-ts/base/context";
import { timestampMs } from "@nsm-ts/base/limits";
import type { Logger } from "@nsm-ts/base/log";
import type { NetworkServiceClient } from "../../core/types.js";
import { type EventFactory, eventFactoryOf } from "../begin/index.js";

const ELEMENT = "refresh";

/** Options of the refresh client. */
export interface RefreshOptions {
  /** Delay between retries of a failed refresh, until the shortest token expiry; default 200 ms. */
  retryIntervalMs?: number;
}

interface Scheduled {
  timer: Timer;
  /** Aborted when the schedule is replaced or stopped, so a refresh already queued in begin is skipped. */
  cancel: AbortController;
}

const scheduledKey = new MetaKey<Scheduled>("refresh.scheduled");

/** RefreshOptions with every default filled in; resolved once by `newClient`. */
interface ResolvedRefreshOptions {
  retryIntervalMs: number;
}

function resolveOptions(opts: RefreshOptions): ResolvedRefreshOptions {
  return { retryIntervalMs: opts.retryIntervalMs ?? 200 };
}

/** One connection's refreshes, as planned after a Request: they go on until the schedule is replaced or stopped. */
interface Refreshing {
  /** The connection's client metadata, where the armed timer is kept. */
  md: MetadataMap;
  clock: Clock;
  log: Logger;
  /** begin's EventFactory of the connection: refreshes go through it. */
  factory: EventFactory;
  /** Stops these refreshes (see `Scheduled.cancel`). */
  cancel: AbortController;
  /** The shortest segment expiry (epoch ms): retries stop there. */
  expiresAt: number;
}

/** What `refreshPlan` decided for a connection. */
export interface RefreshPlan {
  /** Milliseconds from now until the refresh. */
  afterMs: number;
  /** The shortest segment expiry (epoch ms): retries stop there. */
  expiresAt: number;
}

/**
 * When to refresh `conn`: at `scale` × the shortest remaining lifetime among its segments, where `scale`
 * is 1/3 for a one-segment path and `0.2 + 0.2 × index / segments` otherwise (upstream's heuristic: hops
 * nearer the client refresh a little earlier than inner ones, so a chain of refreshing clients with equal
 * expiries does not refresh twice). Deterministic, always within [0.2, 0.4]. Undefined when no segment has
 * an expiry.
 */
export function refreshPlan(conn: Connection, now: number, minDelayMs: number): RefreshPlan | undefined {
  let expiresAt: number | undefined;
  for (const [i, seg] of (conn.path?.pathSegments ?? []).entries()) {
    if (!seg.expires) continue;
    // A reply's timestamps come from another process: an invalid one is InvalidArgument, never a NaN timer.
    const t = timestampMs("refresh", `path.path_segments[${i}].expires`, seg.expires);
    if (expiresAt === undefined || t < expiresAt) expiresAt = t;
  }
  if (expiresAt === undefined) return undefined;
  const segments = conn.path?.pathSegments.length ?? 0;
  const scale = segments > 1 ? 0.2 + (0.2 * (conn.path?.index ?? 0)) / segments : 1 / 3;
  const remaining = expiresAt - now;
  const afterMs = remaining <= 0 ? minDelayMs : Math.max(1, Math.floor(remaining * scale));
  return { afterMs, expiresAt };
}

function stop(md: MetadataMap): void {
  const old = md.delete(scheduledKey);
  if (old) {
    old.timer.stop();
    old.cancel.abort();
  }
}

/** Creates the refresh client element. */
export function newClient(opts: RefreshOptions = {}): NetworkServiceClient {
  const { retryIntervalMs: retryMs } = resolveOptions(opts);

  function schedule(r: Refreshing, afterMs: number): void {
    const { md, clock, log, factory, cancel, expiresAt } = r;
    const timer = clock.setTimer(afterMs, () => {
      factory.request({ signal: cancel.signal }).then(
        () => undefined, // success re-armed through request() below; undefined means closed or superseded
        (err: unknown) => {
          if (cancel.signal.aborted || md.get(scheduledKey)?.cancel !== cancel) return;
          if (clock.now() + retryMs >= expiresAt) {
            md.delete(scheduledKey);
            log.warn({ connId: factory.id, err }, `${ELEMENT}: refresh failed and the tokens expire; giving up`);
            return;
          }
          log.warn({ connId: factory.id, err, retryInMs: retryMs }, `${ELEMENT}: refresh failed, retrying`);
          schedule(r, retryMs);
        },
      );
    });
    md.set(scheduledKey, { timer, cancel });
  }

  return {
    name: ELEMENT,
    async request(ctx, req, next) {
      const factory = eventFactoryOf(ctx, ELEMENT);
      const conn = await next.request(ctx, req);
      const md = ctx.metadata.client;
      stop(md);
      const plan = refreshPlan(conn, ctx.clock.now(), retryMs);
      if (!plan) {
        ctx.log.warn({ connId: conn.id }, `${ELEMENT}: no path segment has an expiry; the connection will not be refreshed`);
        return conn;
      }
      const refreshing = { md, clock: ctx.clock, log: ctx.log, factory, cancel: new AbortController(), expiresAt: plan.expiresAt };
      schedule(refreshing, plan.afterMs);
      return conn;
    },
    async close(ctx, conn, next) {
      try {
        await next.close(ctx, conn);
      } finally {
        stop(ctx.metadata.client);
      }
    },
  };
}
