/** heal: the watch of one connection at its next hop and, once something fails, the heal loop that re-requests it. */
import type { Connection, MonitorScopeSelector } from "@nsm-ts/api/networkservice";
import type { Clock } from "@nsm-ts/base/clock";
import type { Logger } from "@nsm-ts/base/log";
import { Code, isStatusError } from "@nsm-ts/base/status";
import type { EventFactory } from "../begin/index.js";
import { isForwarderFailure } from "../discover/index.js";
import { checkAlive, type LivenessProbe, watchDataPath } from "./liveness.js";
import { isRegistered } from "./lookup.js";
import { type StreamTrigger, watchStream } from "./monitor.js";
import { type ResolvedHealOptions, retryDelayMs } from "./options.js";
import type { HealStatus, HealStatuses } from "./status.js";

const ELEMENT = "heal";

/** Why a watch stopped watching. */
type Trigger = StreamTrigger | "dead";

/** What every watch of one heal element shares. */
export interface Shared {
  opts: ResolvedHealOptions;
  watches: Set<Watch>;
  statuses: HealStatuses;
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
export interface WatchTarget {
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

/** The watch (and, once triggered, the healing) of one connection at one next hop. */
export class Watch {
  private readonly stopper = new AbortController();
  state: "watching" | "healing" | "unsupported" | "ended" = "watching";
  readonly url: string;
  readonly selector: MonitorScopeSelector;
  conn: Connection;
  private readonly factory: EventFactory;
  private readonly clock: Clock;
  private readonly log: Logger;
  private readonly probe: LivenessProbe;

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
    const { livenessCheck: check, livenessCheckTimeoutMs: timeoutMs } = shared.opts;
    this.probe = { check, timeoutMs, clock: this.clock, log: this.log, connId: this.factory.id };
    shared.watches.add(this);
    // A new watch (after a successful Request) speaks for the connection from now on.
    this.shared.statuses.takeOver(this.factory.id);
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
    this.shared.statuses.release(this, this.factory.id);
  }

  /** Records (and reports) the connection's state, unless a newer watch has taken the connection over. */
  private report(status: HealStatus): void {
    this.shared.statuses.report(this, status);
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
    // When the re-requests started failing on the endpoint's side: attempts an nsmgr answered "no forwarder could be
    // reached" (a forwarder restarting) never got to the endpoint, so they do not count toward the fallback reselect,
    // which would only tear down a data path that the restarted forwarder can adopt.
    let endpointFailingSince: number | undefined;
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
        if (endpointFailingSince === undefined && !isForwarderFailure(err)) endpointFailingSince = this.clock.now();
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
      if (!reselect && endpointFailingSince !== undefined && this.clock.now() - endpointFailingSince >= opts.reselectAfterMs) {
        reselect = true;
        reselectWhy = `re-requests to the still registered endpoint failed for ${opts.reselectAfterMs} ms`;
      }
      // A data path that died meanwhile turns the next attempts into reselects.
      if (!reselect && opts.livenessCheck && !(await checkAlive(this.probe, this.conn, this.stopper.signal))) {
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
      const q = {
        lookup: opts.endpointLookup,
        timeoutMs: opts.endpointLookupTimeoutMs,
        clock: this.clock,
        log: this.log,
        connId: this.factory.id,
      };
      const registered = await isRegistered(q, this.url, endpoint, this.stopper.signal);
      if (registered === false) return `endpoint ${endpoint} is no longer registered`;
    }
    return "";
  }

  /** Waits for the first reason to heal: a stream event, the stream's end, or a failed liveness check. */
  private async watch(): Promise<Trigger> {
    const inner = new AbortController();
    const stop = (): void => inner.abort();
    this.stopper.signal.addEventListener("abort", stop, { once: true });
    try {
      const tasks: Array<Promise<Trigger>> = [
        watchStream(this.shared.opts.monitorSource, this.url, this.selector, inner.signal, this.log, this.factory.id),
      ];
      if (this.shared.opts.livenessCheck) {
        tasks.push(watchDataPath(this.probe, this.shared.opts.livenessCheckIntervalMs, () => this.conn, inner.signal));
      }
      return await Promise.race(tasks);
    } finally {
      inner.abort();
      this.stopper.signal.removeEventListener("abort", stop);
    }
  }
}
