/**
 * nexthop monitor (client part of nsmgr/forwarder chains): after a successful Request it watches the next hop's
 * MonitorConnections stream for our own segment of the connection (on one stream per next hop shared by every
 * watch, as heal does), and when that stream breaks (the next hop died or restarted), reports the connection
 * DELETEd or DOWN, or does not know it, it publishes DOWN for our own connection in our ConnectionMonitor. That
 * is how a dead NSE or forwarder reaches the client's heal: each hop turns the loss of its next hop into a DOWN
 * event for its previous hop. Close stops the watch first (our own Close must not look like a failure); a next hop
 * without MonitorConnections is left unwatched. A next hop that asks for a refresh (REFRESH_REQUESTED: a vL3
 * endpoint with a new prefix or a lower MTU) is passed on to the previous hop as REFRESH_REQUESTED, and the watch
 * goes on: the client's heal re-requests along the same path.
 * Reads: `clienturl.urlKey`. Writes: client metadata (the running watch).
 * Place in the client part, before `connect`, after `trimpath` client.
 */
import { create } from "@bufbuild/protobuf";
import { MonitorScopeSelectorSchema, PathSegmentSchema, State } from "@nsm-ts/api/networkservice";
import { MetaKey } from "@nsm-ts/base/context";
import { ChannelPool } from "@nsm-ts/base/dialer";
import type { Logger } from "@nsm-ts/base/log";
import type { TokenGenerator } from "@nsm-ts/base/token";
import { clientUrlOf } from "../../common/clienturl/index.js";
import { grpcMonitorSource, type MonitorSource } from "../../common/heal/index.js";
import { watchStream } from "../../common/heal/monitor.js";
import type { ConnectionMonitor } from "../../common/monitor/index.js";
import { connectionOf } from "../../core/chain.js";
import type { NetworkServiceElement } from "../../core/types.js";

interface Watch {
  url: string;
  nextId: string;
  ac: AbortController;
}

const watchKey = new MetaKey<Watch>("nexthop.watch");

/** Options of the next-hop monitor. */
export interface NextHopMonitorOptions {
  /** Channels to next hops; default a pool of this element. */
  pool?: ChannelPool;
  /** Per-RPC token for the MonitorConnections call. */
  tokenGenerator?: TokenGenerator;
  /** Replaces the next hop's monitor streams (tests); default gRPC on `pool`, one shared stream per next hop. */
  monitorSource?: MonitorSource;
}

/** The next-hop monitor element plus a way to end every watch (owner shutdown). */
export interface NextHopMonitor extends NetworkServiceElement {
  /** Ends every watch without publishing anything and closes its own channels. */
  dispose(): void;
  /** Number of running watches (tests check it drops to 0). */
  size(): number;
}

/** How long a next hop's monitor stream stays open without a watch. */
const IDLE_MS = 30_000;

/** One reason for every stopped watch: `abort()` without one builds a DOMException (with a stack) per Close. */
const STOPPED = new Error("nexthop: watch stopped");

const WHY: Record<string, string> = {
  down: "the next hop does not know the connection, reports it DOWN or closed it",
  lost: "the monitor stream of the next hop broke",
};

/** Creates the next-hop monitor publishing into `monitor`. */
export function newNextHopMonitor(monitor: ConnectionMonitor, opts: NextHopMonitorOptions = {}): NextHopMonitor {
  const pool = opts.pool ?? new ChannelPool();
  const ownPool = opts.pool === undefined;
  // The watches of one next hop share one stream (heal's shared source): a burst of Closes resets one stream,
  // not one per connection, and stays under the peer's HTTP/2 rapid-reset guard. The stream outlives its last
  // watch by IDLE_MS, so connections that come and go one at a time do not open a stream (a token, an
  // authorisation, a state transfer at the next hop) each.
  const shared = opts.monitorSource === undefined ? grpcMonitorSource(pool, opts.tokenGenerator, { idleMs: IDLE_MS }) : undefined;
  const source = opts.monitorSource ?? (shared as MonitorSource);
  const watches = new Set<Watch>();
  let disposed = false;

  const start = (ownId: string, ownSeg: { name: string; id: string }, url: string, nextId: string, log: Logger): Watch => {
    const w: Watch = { url, nextId, ac: new AbortController() };
    watches.add(w);
    // Our own segment, which the next hop's copy of the connection carries.
    const selector = create(MonitorScopeSelectorSchema, { pathSegments: [create(PathSegmentSchema, ownSeg)] });
    void (async () => {
      try {
        const why = await watchStream(source, url, selector, w.ac.signal, log, ownId, () => {
          log.info({ connId: ownId, nextHop: url }, "nexthop: the next hop asks for a refresh; passing it on");
          monitor.setState(ownId, State.REFRESH_REQUESTED);
        });
        if (w.ac.signal.aborted || why === "stopped") return;
        // A next hop without MonitorConnections (some third-party endpoints) cannot be watched: that is no failure.
        if (why === "unsupported") {
          log.debug({ connId: ownId, nextHop: url }, "nexthop: the next hop does not serve MonitorConnections; not watching");
          return;
        }
        w.ac.abort();
        log.info({ connId: ownId, nextHop: url }, `nexthop: ${WHY[why] ?? why}; publishing DOWN`);
        monitor.setState(ownId, State.DOWN);
      } finally {
        watches.delete(w);
      }
    })();
    return w;
  };

  const stop = (w: Watch | undefined): void => {
    if (!w) return;
    w.ac.abort(STOPPED);
    watches.delete(w);
  };

  return {
    name: "nexthop-monitor",
    size: () => watches.size,
    dispose() {
      disposed = true;
      for (const w of [...watches]) stop(w);
      shared?.close();
      if (ownPool) pool.closeAll();
    },
    async request(ctx, req, next) {
      const own = connectionOf(req);
      const ownId = own.id;
      const ownIndex = own.path?.index ?? 0;
      const out = await next.request(ctx, req);
      const url = clientUrlOf(ctx)?.href;
      // The segment after ours is the next hop's, whatever index the response carries.
      const nextSeg = out.path?.pathSegments[ownIndex + 1];
      const ownSeg = out.path?.pathSegments[ownIndex];
      const prev = ctx.metadata.client.get(watchKey);
      if (prev && prev.url === url && prev.nextId === nextSeg?.id && !prev.ac.signal.aborted) return out;
      stop(prev);
      ctx.metadata.client.delete(watchKey);
      if (!disposed && url && nextSeg?.id && ownSeg?.id) {
        ctx.metadata.client.set(watchKey, start(ownId, { name: ownSeg.name, id: ownSeg.id }, url, nextSeg.id, ctx.log));
      }
      return out;
    },
    async close(ctx, conn, next) {
      stop(ctx.metadata.client.get(watchKey));
      ctx.metadata.client.delete(watchKey);
      await next.close(ctx, conn);
    },
  };
}
