/**
 * nexthop monitor (client part of nsmgr/forwarder chains): after a successful Request it watches the next hop's
 * MonitorConnections stream for the next hop's segment of the connection, and when that stream breaks (the next
 * hop died or restarted), reports the connection DELETEd, or reports it DOWN, it publishes DOWN for our own
 * connection in our ConnectionMonitor. That is how a dead NSE or forwarder reaches the client's heal: each hop
 * turns the loss of its next hop into a DOWN event for its previous hop. Close stops the watch first (our own
 * Close must not look like a failure); a next hop without MonitorConnections is left unwatched. A next hop that
 * asks for a refresh (REFRESH_REQUESTED: a vL3 endpoint with a new prefix or a lower MTU) is passed on to the
 * previous hop as REFRESH_REQUESTED, and the watch goes on: the client's heal re-requests along the same path.
 * Reads: `clienturl.urlKey`. Writes: client metadata (the running watch).
 * Place in the client part, before `connect`, after `trimpath` client.
 */
import { create } from "@bufbuild/protobuf";
import { ConnectionEventType, MonitorConnection, MonitorScopeSelectorSchema, PathSegmentSchema, State } from "@nsm-ts/api/networkservice";
import { MetaKey } from "@nsm-ts/base/context";
import { ChannelPool } from "@nsm-ts/base/dialer";
import { createClient } from "@nsm-ts/base/grpc";
import type { Logger } from "@nsm-ts/base/log";
import { Code, isStatusError } from "@nsm-ts/base/status";
import { type TokenGenerator, tokenMetadata } from "@nsm-ts/base/token";
import { clientUrlOf } from "../../common/clienturl/index.js";
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
}

/** The next-hop monitor element plus a way to end every watch (owner shutdown). */
export interface NextHopMonitor extends NetworkServiceElement {
  /** Ends every watch without publishing anything and closes its own channels. */
  dispose(): void;
  /** Number of running watches (tests check it drops to 0). */
  size(): number;
}

/** Creates the next-hop monitor publishing into `monitor`. */
export function newNextHopMonitor(monitor: ConnectionMonitor, opts: NextHopMonitorOptions = {}): NextHopMonitor {
  const pool = opts.pool ?? new ChannelPool();
  const ownPool = opts.pool === undefined;
  const watches = new Set<Watch>();
  let disposed = false;

  const start = (ownId: string, url: string, nextId: string, log: Logger): Watch => {
    const w: Watch = { url, nextId, ac: new AbortController() };
    watches.add(w);
    const down = (why: string, err?: unknown): void => {
      if (w.ac.signal.aborted) return;
      w.ac.abort();
      log.info({ connId: ownId, nextHop: url, err }, `nexthop: ${why}; publishing DOWN`);
      monitor.setState(ownId, State.DOWN);
    };
    const ch = pool.acquire(url);
    void (async () => {
      try {
        const metadata = opts.tokenGenerator ? tokenMetadata(await opts.tokenGenerator()) : undefined;
        const selector = create(MonitorScopeSelectorSchema, { pathSegments: [create(PathSegmentSchema, { id: nextId })] });
        const stream = createClient(MonitorConnection, ch).monitorConnections(selector, {
          signal: w.ac.signal,
          ...(metadata ? { metadata } : {}),
        });
        for await (const ev of stream) {
          const c = ev.connections[nextId];
          if (ev.type === ConnectionEventType.INITIAL_STATE_TRANSFER) {
            if (!c) return down("the next hop does not know the connection");
            if (c.state === State.DOWN) return down("the next hop reports the connection DOWN");
            continue;
          }
          if (!c) continue;
          if (ev.type === ConnectionEventType.DELETE) return down("the next hop closed the connection");
          if (c.state === State.DOWN) return down("the next hop reports the connection DOWN");
          if (c.state === State.REFRESH_REQUESTED) {
            log.info({ connId: ownId, nextHop: url }, "nexthop: the next hop asks for a refresh; passing it on");
            monitor.setState(ownId, State.REFRESH_REQUESTED);
          }
        }
        down("the next hop ended the monitor stream");
      } catch (err) {
        // A next hop without MonitorConnections (some third-party endpoints) cannot be watched: that is no failure.
        if (isStatusError(err, Code.Unimplemented)) {
          log.debug({ connId: ownId, nextHop: url }, "nexthop: the next hop does not serve MonitorConnections; not watching");
          return;
        }
        down("the monitor stream of the next hop broke", err);
      } finally {
        watches.delete(w);
        pool.release(url);
      }
    })();
    return w;
  };

  const stop = (w: Watch | undefined): void => {
    if (!w) return;
    w.ac.abort();
    watches.delete(w);
  };

  return {
    name: "nexthop-monitor",
    size: () => watches.size,
    dispose() {
      disposed = true;
      for (const w of [...watches]) stop(w);
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
      const prev = ctx.metadata.client.get(watchKey);
      if (prev && prev.url === url && prev.nextId === nextSeg?.id && !prev.ac.signal.aborted) return out;
      stop(prev);
      ctx.metadata.client.delete(watchKey);
      if (!disposed && url && nextSeg?.id) ctx.metadata.client.set(watchKey, start(ownId, url, nextSeg.id, ctx.log));
      return out;
    },
    async close(ctx, conn, next) {
      stop(ctx.metadata.client.get(watchKey));
      ctx.metadata.client.delete(watchKey);
      await next.close(ctx, conn);
    },
  };
}
