/** heal: the next hop's MonitorConnections stream — the default gRPC source, and reading it for a reason to heal. */
import type { ConnectionEvent, MonitorScopeSelector } from "@nsm-ts/api/networkservice";
import { ConnectionEventType, MonitorConnection, State } from "@nsm-ts/api/networkservice";
import type { ChannelPool } from "@nsm-ts/base/dialer";
import { type CallOptions, createClient } from "@nsm-ts/base/grpc";
import type { Logger } from "@nsm-ts/base/log";
import { Code, isStatusError } from "@nsm-ts/base/status";
import { type TokenGenerator, tokenMetadata } from "@nsm-ts/base/token";
import { matchesSelector } from "../monitor/index.js";
import { type MonitorMuxOptions, type SharedMonitorSource, sharedMonitorSource } from "./mux.js";

const ELEMENT = "heal";

/** Opens the MonitorConnections stream of the next hop at `url`; ends when `signal` aborts. */
export type MonitorSource = (url: string, selector: MonitorScopeSelector, signal: AbortSignal) => AsyncIterable<ConnectionEvent>;

/**
 * The default source: MonitorConnections over gRPC on a channel of `pool`, the watches of one next hop sharing
 * one stream (`mux.ts`; `opts` tunes it).
 */
export function grpcMonitorSource(pool: ChannelPool, tokenGenerator?: TokenGenerator, opts: MonitorMuxOptions = {}): SharedMonitorSource {
  return sharedMonitorSource(rawGrpcMonitorSource(pool, tokenGenerator), opts);
}

/** One MonitorConnections stream over gRPC per call, on a channel of `pool`. */
export function rawGrpcMonitorSource(pool: ChannelPool, tokenGenerator?: TokenGenerator): MonitorSource {
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

/** Why the stream stopped being watched: our connection down or deleted, the stream lost, stopped, or not served. */
export type StreamTrigger = "down" | "lost" | "stopped" | "unsupported";

/**
 * Reads the stream of `source` at `url` for `selector` until our connection is reported DOWN, REFRESH_REQUESTED or
 * deleted, is missing from (or down in) the initial state transfer, or the stream ends; `signal` stops it. With
 * `onRefreshRequested`, a later REFRESH_REQUESTED is handed to it and the watch goes on (a hop passes it back).
 */
export async function watchStream(
  source: MonitorSource,
  url: string,
  selector: MonitorScopeSelector,
  signal: AbortSignal,
  log: Logger,
  connId: string,
  onRefreshRequested?: () => void,
): Promise<StreamTrigger> {
  let first = true;
  try {
    for await (const ev of source(url, selector, signal)) {
      const mine = Object.values(ev.connections).filter((c) => matchesSelector(c, selector));
      const unwell = mine.some((c) => c.state === State.DOWN || c.state === State.REFRESH_REQUESTED);
      if (ev.type === ConnectionEventType.INITIAL_STATE_TRANSFER) {
        // The next hop does not know our connection (it restarted between our Request and the watch), or
        // already knows it is down (its own next hop died before we subscribed).
        if (first && (mine.length === 0 || unwell)) return "down";
      } else if (ev.type === ConnectionEventType.DELETE) {
        if (mine.length > 0) return "down";
      } else if (mine.some((c) => c.state === State.DOWN)) {
        return "down";
      } else if (unwell) {
        if (!onRefreshRequested) return "down";
        onRefreshRequested();
      }
      first = false;
    }
    return signal.aborted ? "stopped" : "lost";
  } catch (err) {
    if (signal.aborted) return "stopped";
    if (isStatusError(err, Code.Unimplemented)) return "unsupported";
    log.debug({ connId, err }, `${ELEMENT}: monitor stream ended`);
    return "lost";
  }
}
