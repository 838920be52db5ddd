/**
 * heal (client): notices that the connection died further down the path and re-establishes it. After each
 * successful Request it watches the next hop's MonitorConnections stream (selector: our own path segment,
 * name and id, which the next hop's copy of the connection carries) on a channel from the same pool the
 * `connect` element uses. When the stream reports our connection DOWN, REFRESH_REQUESTED or deleted, lacks
 * it in the initial state transfer, or ends (the next hop went away), heal re-Requests through begin's
 * EventFactory; when the optional data-path liveness check fails it re-Requests with reselect, so another
 * endpoint can be chosen. It first re-requests the same endpoint and switches to reselect once the endpoint
 * is gone from the registry (NotFound, or a registry look-up at the next hop) or, while it stays registered
 * but unreachable, after `reselectAfterMs`. Failed attempts are repeated with a capped, jittered exponential
 * backoff on `ctx.clock` for as long as the connection lives: only the client's Close (or begin's lifetime
 * signal) ends a heal; the Close begin sends ahead of a reselect does not. A successful heal starts a new
 * watch; Close ends the watch (no timers or streams are left behind). A next hop that does not serve
 * MonitorConnection (Unimplemented) leaves the connection unwatched. Each connection's state (CONNECTED,
 * or HEALING with the attempt count) is readable through `status()` and reported to `onStatus`.
 *
 * Reads: `clienturl.urlKey` (the next hop), the returned `connection.path`, begin's EventFactory and
 * reselect-Close marker, `ctx.clock`. Writes: its watch in `ctx.metadata.client`. Placement: client chains after `begin`,
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
import { NetworkServiceEndpointRegistry, NetworkServiceEndpointSchema } from "@nsm-ts/api/registry";
import type { Clock } from "@nsm-ts/base/clock";
import { MetaKey } from "@nsm-ts/base/context";
import { ChannelPool } from "@nsm-ts/base/dialer";
import { type CallOptions, createClient } from "@nsm-ts/base/grpc";
import type { Logger } from "@nsm-ts/base/log";
import { Code, isStatusError } from "@nsm-ts/base/status";
import { type TokenGenerator, tokenMetadata } from "@nsm-ts/base/token";
import type { NetworkServiceClient } from "../../core/types.js";
import { type EventFactory, eventFactoryOf, isReselectClose } from "../begin/index.js";
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

/**
 * Asks the registry, through the next hop at `url`, whether endpoint `name` is registered: resolves true or
 * false, rejects when the registry cannot tell (heal then keeps its fixed-time fallback).
 */
export type EndpointLookup = (url: string, name: string, signal: AbortSignal) => Promise<boolean>;

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

/** A connection's heal state: CONNECTED (watched, or unwatchable), HEALING, or CLOSED (last report only). */
export interface HealStatus {
  /** The connection id. */
  connId: string;
  state: "CONNECTED" | "HEALING" | "CLOSED";
  /** The heal attempt under way or last made (0 when not healing). */
  attempt: number;
  /** What started the heal (`down`, `lost`, `dead`). */
  trigger?: string;
  /** Whether the attempts ask for another endpoint (reselect) rather than the same one. */
  reselect?: boolean;
  /** When the heal started (ms since the epoch on the chain's clock). */
  sinceMs?: number;
  /** When the next attempt is due, while waiting between attempts (ms since the epoch on the chain's clock). */
  nextAttemptAtMs?: number;
  /** The previous attempt's error message. */
  lastError?: string;
}

/** The heal element plus resource control. */
export interface HealClient extends NetworkServiceClient {
  /** Number of connections being watched or healed (tests check it drops to 0 after Close). */
  readonly watching: number;
  /** Heal state of every connection this element knows (CONNECTED or HEALING), or of one connection. */
  status(): HealStatus[];
  status(connId: string): HealStatus | undefined;
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

/** The default registry look-up: Find (no watch) for `name` on the next hop's endpoint registry. */
export function grpcEndpointLookup(pool: ChannelPool, tokenGenerator?: TokenGenerator): EndpointLookup {
  return async (url, name, signal) => {
    const channel = pool.acquire(url);
    try {
      const opts: CallOptions = { signal };
      if (tokenGenerator) opts.metadata = tokenMetadata(await tokenGenerator());
      const query = { networkServiceEndpoint: create(NetworkServiceEndpointSchema, { name }), watch: false };
      for await (const r of createClient(NetworkServiceEndpointRegistry, channel).find(query, opts)) {
        if (!r.deleted && r.networkServiceEndpoint?.name === name) return true;
      }
      return false;
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
  retryJitter: number;
  random: () => number;
  reselectAfterMs: number;
  endpointLookup: EndpointLookup | undefined;
  endpointLookupTimeoutMs: number;
  onEvent: (event: HealEvent) => void;
  onStatus: (status: HealStatus) => void;
}

/** Fills in the defaults; the monitor streams run on `ownPool` when the caller gave neither a pool nor a source. */
function resolveOptions(opts: HealOptions, ownPool: ChannelPool | undefined): ResolvedHealOptions {
  const pool = opts.pool ?? ownPool;
  return {
    monitorSource: opts.monitorSource ?? grpcMonitorSource((opts.pool ?? ownPool) as ChannelPool, opts.tokenGenerator),
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

interface Shared {
  opts: ResolvedHealOptions;
  watches: Set<Watch>;
  /** Per connection id, the watch that speaks for it and its state. */
  statuses: Map<string, { owner: Watch; status: HealStatus }>;
}

/** The delay before attempt `attempt + 1`: min × 2^(attempt−1), capped, ± the jitter fraction. */
export function retryDelayMs(
  attempt: number,
  opts: Pick<ResolvedHealOptions, "minRetryDelayMs" | "maxRetryDelayMs" | "retryJitter" | "random">,
): number {
  const base = Math.min(opts.minRetryDelayMs * 2 ** Math.min(attempt - 1, 30), opts.maxRetryDelayMs);
  return Math.max(0, Math.round(base * (1 + opts.retryJitter * (2 * opts.random() - 1))));
}

const TRIGGER_TEXT: Record<string, string> = {
  down: "the next hop reported the connection down or deleted it",
  lost: "the monitor stream of the next hop ended",
  dead: "the data-path liveness check failed",
};

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
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
    // A new watch (after a successful Request) speaks for the connection from now on.
    this.shared.statuses.delete(this.factory.id);
    this.report({ connId: this.factory.id, state: "CONNECTED", attempt: 0 });
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
    // A newer watch of the same connection speaks for it now; otherwise the connection is closed.
    const st = this.shared.statuses.get(this.factory.id);
    if (st?.owner === this) {
      this.shared.statuses.delete(this.factory.id);
      this.shared.opts.onStatus({ connId: this.factory.id, state: "CLOSED", attempt: 0 });
    }
  }

  /** Records (and reports) the connection's state, unless a newer watch has taken the connection over. */
  private report(status: HealStatus): void {
    const st = this.shared.statuses.get(status.connId);
    if (st !== undefined && st.owner !== this) return;
    this.shared.statuses.set(status.connId, { owner: this, status });
    this.shared.opts.onStatus({ ...status });
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
    await this.heal(why);
  }

  /**
   * Re-requests until one attempt succeeds or the connection is closed: the same endpoint first, reselect once
   * the endpoint is gone from the registry, the data path is dead, or the fallback time has passed.
   */
  private async heal(why: Trigger): Promise<void> {
    this.state = "healing";
    const opts = this.shared.opts;
    const connId = this.factory.id;
    const started = this.clock.now();
    const endpoint = this.conn.networkServiceEndpointName;
    let reselect = why === "dead";
    let reselectWhy = reselect ? "the data path is dead" : "";
    let lastError: string | undefined;
    opts.onEvent("started");
    for (let attempt = 1; ; attempt++) {
      if (this.stopper.signal.aborted) return;
      const target = reselect ? "reselect" : "same endpoint";
      this.report({ connId, state: "HEALING", attempt, trigger: why, reselect, sinceMs: started, ...(lastError ? { lastError } : {}) });
      this.log.info(
        {
          connId,
          attempt,
          trigger: why,
          target,
          nse: endpoint,
          ...(reselect ? { reselectBecause: reselectWhy } : {}),
          ...(lastError ? { previousError: lastError } : {}),
          healingForMs: this.clock.now() - started,
        },
        `${ELEMENT}: attempt ${attempt} (${target}${reselect ? "" : ` ${endpoint}`}): ${TRIGGER_TEXT[why] ?? why}`,
      );
      try {
        const out = await this.factory.request({ reselect, signal: this.stopper.signal });
        if (out !== undefined) {
          this.log.info(
            { connId, attempt, tookMs: this.clock.now() - started, reselect, nse: out.networkServiceEndpointName },
            `${ELEMENT}: healed`,
          );
          opts.onEvent("healed");
        }
        // Healed (the Request started a new watch and ended this one) or the connection is gone.
        this.end();
        return;
      } catch (err) {
        // Only the client's Close, begin's lifetime or a newer watch end a heal; never a failed attempt.
        if (this.stopper.signal.aborted) return;
        lastError = messageOf(err);
        opts.onEvent("attempt_failed");
        if (!reselect) {
          reselectWhy = await this.reselectReason(err, endpoint);
          reselect = reselectWhy !== "";
        }
      }
      const delay = retryDelayMs(attempt, opts);
      this.report({
        connId,
        state: "HEALING",
        attempt,
        trigger: why,
        reselect,
        sinceMs: started,
        nextAttemptAtMs: this.clock.now() + delay,
        lastError,
      });
      this.log.warn({ connId, attempt, err: lastError, retryInMs: delay, reselect }, `${ELEMENT}: heal attempt ${attempt} failed`);
      try {
        await this.clock.sleep(delay, this.stopper.signal);
      } catch {
        return;
      }
      if (!reselect && this.clock.now() - started >= opts.reselectAfterMs) {
        reselect = true;
        reselectWhy = `re-requests to the still registered endpoint failed for ${opts.reselectAfterMs} ms`;
      }
      // A data path that died meanwhile turns the next attempts into reselects.
      if (!reselect && opts.livenessCheck && !(await this.alive(this.stopper.signal))) {
        reselect = true;
        reselectWhy = "the data path is dead";
      }
    }
  }

  /**
   * Why the next attempt should reselect after a failed re-request to `endpoint`, or "" to stay with it: the
   * endpoint is not registered (NotFound, or the registry says so). The fallback time is checked before each attempt.
   */
  private async reselectReason(err: unknown, endpoint: string): Promise<string> {
    const opts = this.shared.opts;
    if (isStatusError(err, Code.NotFound)) return "the re-request found no such endpoint (NotFound)";
    if (this.stopper.signal.aborted) return "";
    if (endpoint && opts.endpointLookup) {
      const bound = new AbortController();
      const stop = (): void => bound.abort();
      this.stopper.signal.addEventListener("abort", stop, { once: true });
      const timer = this.clock.setTimer(opts.endpointLookupTimeoutMs, stop);
      try {
        const registered = await Promise.race([
          opts.endpointLookup(this.url, endpoint, bound.signal),
          new Promise<undefined>((resolve) => bound.signal.addEventListener("abort", () => resolve(undefined), { once: true })),
        ]);
        if (registered === false) return `endpoint ${endpoint} is no longer registered`;
      } catch (lookupErr) {
        this.log.debug({ connId: this.factory.id, err: lookupErr }, `${ELEMENT}: registry look-up failed; cannot tell`);
      } finally {
        timer.stop();
        bound.abort();
        this.stopper.signal.removeEventListener("abort", stop);
      }
    }
    return "";
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
  const shared: Shared = { opts: resolveOptions(opts, ownPool), watches: new Set(), statuses: new Map() };
  function status(): HealStatus[];
  function status(connId: string): HealStatus | undefined;
  function status(connId?: string): HealStatus[] | HealStatus | undefined {
    if (connId !== undefined) {
      const st = shared.statuses.get(connId)?.status;
      return st && { ...st };
    }
    return [...shared.statuses.values()].map((s) => ({ ...s.status }));
  }
  return {
    name: ELEMENT,
    get watching() {
      return shared.watches.size;
    },
    status,
    dispose() {
      for (const w of [...shared.watches]) w.end();
      for (const { owner } of [...shared.statuses.values()]) owner.end();
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
      const md = ctx.metadata.client;
      const current = md.get(watchKey);
      // The Close begin sends ahead of a reselect is part of the heal (or of the user's reselect): the
      // connection lives on, and a heal must go on if the reselect's Request fails.
      if (!(current?.state === "healing" && isReselectClose(ctx))) {
        // Stop watching first: the next hop's DELETE for this Close must not look like a lost connection.
        md.delete(watchKey);
        current?.end();
      }
      await next.close(ctx, conn);
    },
  };
}
