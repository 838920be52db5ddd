/**
 * heal (client): notices that the connection died further down the path and re-establishes it. After each
 * successful Request it watches the next hop's MonitorConnections stream (selector: our own path segment,
 * name and id, which the next hop's copy of the connection carries) on a channel from the same pool the
 * `connect` element uses. When the stream reports our connection DOWN, REFRESH_REQUESTED or deleted, lacks
 * it in the initial state transfer, or ends (the next hop went away), heal re-Requests through begin's
 * EventFactory; when the optional data-path liveness check fails it re-Requests with reselect, so another
 * endpoint can be chosen. Failed attempts are repeated with a capped backoff on `ctx.clock` until one
 * succeeds or the connection is closed. A successful heal starts a new watch; Close ends the watch (no
 * timers or streams are left behind). A next hop that does not serve MonitorConnection (Unimplemented)
 * leaves the connection unwatched.
 *
 * Reads: `clienturl.urlKey` (the next hop), the returned `connection.path`, begin's EventFactory,
 * `ctx.clock`. Writes: its watch in `ctx.metadata.client`. Placement: client chains after `begin`,
 * `metadata` and `clienturl`, before the elements that call the next hop.
 */
import { clone, create } from "@bufbuild/protobuf";
import {
  type Connection,
  type ConnectionEvent,
  ConnectionEventType,
  ConnectionSchema,
  MonitorConnection,
  type MonitorScopeSelector,
  MonitorScopeSelectorSchema,
  State,
} from "@nsm-ts/api/networkservice";
import type { Clock } from "@nsm-ts/base/clock";
import { MetaKey } from "@nsm-ts/base/context";
import { ChannelPool } from "@nsm-ts/base/dialer";
import { type CallOptions, createClient } from "@nsm-ts/base/grpc";
import type { Logger } from "@nsm-ts/base/log";
import { Code, isStatusError } from "@nsm-ts/base/status";
import { type TokenGenerator, tokenMetadata } from "@nsm-ts/base/token";
import type { NetworkServiceClient } from "../../core/types.js";
import { type EventFactory, eventFactoryOf } from "../begin/index.js";
import { clientUrlOf } from "../clienturl/index.js";
import { matchesSelector } from "../monitor/index.js";

const ELEMENT = "heal";

/** Opens the MonitorConnections stream of the next hop at `url`; ends when `signal` aborts. */
export type MonitorSource = (url: string, selector: MonitorScopeSelector, signal: AbortSignal) => AsyncIterable<ConnectionEvent>;

/**
 * A data-path liveness check (e.g. a ping through the connection's interface): resolves true while the data
 * path works. It should honour `signal`; a check that takes longer than the timeout counts as failed.
 */
export type LivenessCheck = (conn: Connection, signal: AbortSignal) => Promise<boolean>;

/** Options of the heal client. */
export interface HealOptions {
  /** Pool the monitor streams are opened on; pass connect's pool so one channel per next hop serves both. Default: own pool. */
  pool?: ChannelPool;
  /** Sends our token (`nsm-client-token`) on the monitor stream; default none. */
  tokenGenerator?: TokenGenerator;
  /** Replaces the gRPC monitor stream (tests, or a next hop in the same process). */
  monitorSource?: MonitorSource;
  /** Data-path liveness check; default none (only the control plane is watched). */
  livenessCheck?: LivenessCheck;
  /** Time between liveness checks; default 200 ms. */
  livenessCheckIntervalMs?: number;
  /** A liveness check still running after this long counts as failed; default 1 000 ms. */
  livenessCheckTimeoutMs?: number;
  /** Delay before the second heal attempt; it doubles per failure up to `maxRetryDelayMs`. Default 50 ms. */
  minRetryDelayMs?: number;
  /** Upper bound of the delay between heal attempts; default 200 ms (upstream's attempt interval). */
  maxRetryDelayMs?: number;
  /**
   * After re-requests to the same endpoint have failed for this long, ask with reselect instead, so a
   * replacement endpoint under another name (a new pod of a Deployment) can take over; default 5 000 ms —
   * longer than an nsmgr or forwarder restart, which heal rides out on the same endpoint.
   */
  reselectAfterMs?: number;
  /** Told about each heal event (metrics count them): a heal starts, a connection healed, an attempt failed. */
  onEvent?: (event: HealEvent) => void;
}

/** What `HealOptions.onEvent` reports. */
export type HealEvent = "started" | "healed" | "attempt_failed";

/** The heal element plus resource control. */
export interface HealClient extends NetworkServiceClient {
  /** Number of connections being watched or healed (tests check it drops to 0 after Close). */
  readonly watching: number;
  /** Ends every watch and closes the element's own pool (not a pool passed in). */
  dispose(): void;
}

/** The default source: MonitorConnections over gRPC on a channel of `pool`. */
export function grpcMonitorSource(pool: ChannelPool, tokenGenerator?: TokenGenerator): MonitorSource {
  return async function* (url, selector, signal) {
    const channel = pool.acquire(url);
    try {
      const opts: CallOptions = { signal };
      if (tokenGenerator) opts.metadata = tokenMetadata(await tokenGenerator());
      yield* createClient(MonitorConnection, channel).monitorConnections(selector, opts);
    } finally {
      pool.release(url);
    }
  };
}

/** Why a watch stopped watching. */
type Trigger = "down" | "lost" | "dead" | "stopped" | "unsupported";

/** HealOptions with every default filled in and the monitor source built; resolved once by `newClient`. */
interface ResolvedHealOptions {
  monitorSource: MonitorSource;
  livenessCheck: LivenessCheck | undefined;
  livenessCheckIntervalMs: number;
  livenessCheckTimeoutMs: number;
  minRetryDelayMs: number;
  maxRetryDelayMs: number;
  reselectAfterMs: number;
  onEvent: (event: HealEvent) => void;
}

/** Fills in the defaults; the monitor streams run on `ownPool` when the caller gave neither a pool nor a source. */
function resolveOptions(opts: HealOptions, ownPool: ChannelPool | undefined): ResolvedHealOptions {
  return {
    monitorSource: opts.monitorSource ?? grpcMonitorSource((opts.pool ?? ownPool) as ChannelPool, opts.tokenGenerator),
    livenessCheck: opts.livenessCheck,
    livenessCheckIntervalMs: opts.livenessCheckIntervalMs ?? 200,
    livenessCheckTimeoutMs: opts.livenessCheckTimeoutMs ?? 1000,
    minRetryDelayMs: opts.minRetryDelayMs ?? 50,
    maxRetryDelayMs: opts.maxRetryDelayMs ?? 200,
    reselectAfterMs: opts.reselectAfterMs ?? 5_000,
    onEvent: opts.onEvent ?? (() => undefined),
  };
}

interface Shared {
  opts: ResolvedHealOptions;
  watches: Set<Watch>;
}

/** What a watch watches and how it heals, taken from the Request that started it. */
interface WatchTarget {
  /** The next hop's URL. */
  url: string;
  /** Our path segment, which the next hop's copy of the connection carries. */
  selector: MonitorScopeSelector;
  /** The connection as the Request returned it. */
  conn: Connection;
  /** begin's EventFactory of the connection: heal re-Requests through it. */
  factory: EventFactory;
  clock: Clock;
  log: Logger;
}

const watchKey = new MetaKey<Watch>("heal.watch");

/** The watch (and, once triggered, the healing) of one connection at one next hop. */
class Watch {
  private readonly stopper = new AbortController();
  state: "watching" | "healing" | "unsupported" | "ended" = "watching";
  readonly url: string;
  readonly selector: MonitorScopeSelector;
  conn: Connection;
  private readonly factory: EventFactory;
  private readonly clock: Clock;
  private readonly log: Logger;

  constructor(
    target: WatchTarget,
    private readonly shared: Shared,
  ) {
    this.url = target.url;
    this.selector = target.selector;
    this.conn = target.conn;
    this.factory = target.factory;
    this.clock = target.clock;
    this.log = target.log;
    shared.watches.add(this);
    // The connection closed by other means (a timeout, an authorize denial): nothing left to heal.
    if (this.factory.signal.aborted) this.end();
    else this.factory.signal.addEventListener("abort", this.onClosed, { once: true });
  }

  private readonly onClosed = (): void => this.end();

  /** Same next hop and same segment: the running watch already covers the connection. */
  covers(url: string, selector: MonitorScopeSelector): boolean {
    const a = this.selector.pathSegments[0];
    const b = selector.pathSegments[0];
    return this.url === url && a?.id === b?.id && a?.name === b?.name;
  }

  end(): void {
    if (this.state === "ended") return;
    this.state = "ended";
    this.stopper.abort();
    this.factory.signal.removeEventListener("abort", this.onClosed);
    this.shared.watches.delete(this);
  }

  async run(): Promise<void> {
    const why = await this.watch();
    if (this.stopper.signal.aborted || why === "stopped") return;
    if (why === "unsupported") {
      // Keep the watch recorded (so refreshes do not reopen it) but hold no resources.
      this.log.warn({ connId: this.factory.id, url: this.url }, `${ELEMENT}: the next hop does not serve MonitorConnections; not watching`);
      this.state = "unsupported";
      this.shared.watches.delete(this);
      return;
    }
    this.state = "healing";
    const started = this.clock.now();
    let reselect = why === "dead";
    this.log.warn({ connId: this.factory.id, url: this.url, why, reselect }, `${ELEMENT}: connection lost at the next hop, healing`);
    this.shared.opts.onEvent("started");
    const minMs = this.shared.opts.minRetryDelayMs;
    const maxMs = this.shared.opts.maxRetryDelayMs;
    let delay = minMs;
    for (let attempt = 1; !this.stopper.signal.aborted; attempt++) {
      try {
        const out = await this.factory.request({ reselect, signal: this.stopper.signal });
        if (out !== undefined) {
          this.log.info({ connId: this.factory.id, attempt, tookMs: this.clock.now() - started, reselect }, `${ELEMENT}: healed`);
          this.shared.opts.onEvent("healed");
        }
        // Healed (the Request started a new watch and ended this one) or the connection is gone.
        this.end();
        return;
      } catch (err) {
        if (this.stopper.signal.aborted) return;
        this.log.warn({ connId: this.factory.id, attempt, err, retryInMs: delay }, `${ELEMENT}: heal attempt failed`);
        this.shared.opts.onEvent("attempt_failed");
      }
      try {
        await this.clock.sleep(delay, this.stopper.signal);
      } catch {
        return;
      }
      delay = Math.min(delay * 2, maxMs);
      // A data path that died meanwhile, or an endpoint that stays unreachable, turns the next attempts into reselects.
      if (!reselect && this.clock.now() - started >= this.shared.opts.reselectAfterMs) reselect = true;
      if (!reselect && this.shared.opts.livenessCheck && !(await this.alive(this.stopper.signal))) reselect = true;
    }
  }

  /** Waits for the first reason to heal: a stream event, the stream's end, or a failed liveness check. */
  private async watch(): Promise<Trigger> {
    const inner = new AbortController();
    const stop = (): void => inner.abort();
    this.stopper.signal.addEventListener("abort", stop, { once: true });
    try {
      const tasks = [this.watchStream(inner.signal)];
      if (this.shared.opts.livenessCheck) tasks.push(this.watchDataPath(inner.signal));
      return await Promise.race(tasks);
    } finally {
      inner.abort();
      this.stopper.signal.removeEventListener("abort", stop);
    }
  }

  private async watchStream(signal: AbortSignal): Promise<Trigger> {
    let first = true;
    try {
      for await (const ev of this.shared.opts.monitorSource(this.url, this.selector, signal)) {
        const mine = Object.values(ev.connections).filter((c) => matchesSelector(c, this.selector));
        const unwell = mine.some((c) => c.state === State.DOWN || c.state === State.REFRESH_REQUESTED);
        if (ev.type === ConnectionEventType.INITIAL_STATE_TRANSFER) {
          // The next hop does not know our connection (it restarted between our Request and the watch), or
          // already knows it is down (its own next hop died before we subscribed).
          if (first && (mine.length === 0 || unwell)) return "down";
        } else if (ev.type === ConnectionEventType.DELETE) {
          if (mine.length > 0) return "down";
        } else if (unwell) {
          return "down";
        }
        first = false;
      }
      return signal.aborted ? "stopped" : "lost";
    } catch (err) {
      if (signal.aborted) return "stopped";
      if (isStatusError(err, Code.Unimplemented)) return "unsupported";
      this.log.debug({ connId: this.factory.id, err }, `${ELEMENT}: monitor stream ended`);
      return "lost";
    }
  }

  private async watchDataPath(signal: AbortSignal): Promise<Trigger> {
    const intervalMs = this.shared.opts.livenessCheckIntervalMs;
    for (;;) {
      try {
        await this.clock.sleep(intervalMs, signal);
      } catch {
        return "stopped";
      }
      const alive = await this.alive(signal);
      if (signal.aborted) return "stopped";
      if (!alive) return "dead";
    }
  }

  /** One liveness check, bounded by the timeout; an exception counts as dead. */
  private async alive(signal: AbortSignal): Promise<boolean> {
    const check = this.shared.opts.livenessCheck;
    if (!check) return true;
    const bound = new AbortController();
    const stop = (): void => bound.abort();
    signal.addEventListener("abort", stop, { once: true });
    const timer = this.clock.setTimer(this.shared.opts.livenessCheckTimeoutMs, stop);
    const timedOut = new Promise<boolean>((resolve) => bound.signal.addEventListener("abort", () => resolve(false), { once: true }));
    try {
      return await Promise.race([check(clone(ConnectionSchema, this.conn), bound.signal), timedOut]);
    } catch (err) {
      this.log.warn({ connId: this.factory.id, err }, `${ELEMENT}: liveness check failed`);
      return false;
    } finally {
      timer.stop();
      bound.abort();
      signal.removeEventListener("abort", stop);
    }
  }
}

/** Creates the heal client element. */
export function newClient(opts: HealOptions = {}): HealClient {
  const ownPool = opts.pool === undefined && opts.monitorSource === undefined ? new ChannelPool() : undefined;
  const shared: Shared = { opts: resolveOptions(opts, ownPool), watches: new Set() };
  return {
    name: ELEMENT,
    get watching() {
      return shared.watches.size;
    },
    dispose() {
      for (const w of [...shared.watches]) w.end();
      ownPool?.closeAll();
    },
    async request(ctx, req, next) {
      const factory = eventFactoryOf(ctx, ELEMENT);
      const ownIndex = req.connection?.path?.index ?? 0;
      const conn = await next.request(ctx, req);
      const url = clientUrlOf(ctx)?.href;
      const seg = conn.path?.pathSegments[ownIndex];
      if (url === undefined || seg === undefined) {
        ctx.log.debug({ connId: conn.id }, `${ELEMENT}: no next-hop URL or own path segment; not watching`);
        return conn;
      }
      const selector = create(MonitorScopeSelectorSchema, { pathSegments: [{ name: seg.name, id: seg.id }] });
      const md = ctx.metadata.client;
      const current = md.get(watchKey);
      if (current && (current.state === "watching" || current.state === "unsupported") && current.covers(url, selector)) {
        current.conn = clone(ConnectionSchema, conn);
        return conn;
      }
      current?.end();
      const w = new Watch({ url, selector, conn: clone(ConnectionSchema, conn), factory, clock: ctx.clock, log: ctx.log }, shared);
      md.set(watchKey, w);
      if (w.state === "watching") {
        w.run().catch((err: unknown) => ctx.log.error({ connId: conn.id, err }, `${ELEMENT}: watch failed`));
      }
      return conn;
    },
    async close(ctx, conn, next) {
      // Stop watching first: the next hop's DELETE for this Close must not look like a lost connection.
      ctx.metadata.client.delete(watchKey)?.end();
      await next.close(ctx, conn);
    },
  };
}
