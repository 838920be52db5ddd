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
import { ConnectionSchema, MonitorScopeSelectorSchema } from "@nsm-ts/api/networkservice";
import { MetaKey } from "@nsm-ts/base/context";
import { ChannelPool } from "@nsm-ts/base/dialer";
import { eventFactoryOf, isReselectClose } from "../begin/index.js";
import { clientUrlOf } from "../clienturl/index.js";
import { type HealOptions, resolveOptions } from "./options.js";
import { type HealClient, type HealStatus, HealStatuses } from "./status.js";
import { type Shared, Watch } from "./watch.js";

const ELEMENT = "heal";

const watchKey = new MetaKey<Watch>("heal.watch");

/** Creates the heal client element. */
export function newClient(opts: HealOptions = {}): HealClient {
  const ownPool = opts.pool === undefined && opts.monitorSource === undefined ? new ChannelPool() : undefined;
  const resolved = resolveOptions(opts, ownPool);
  const shared: Shared = { opts: resolved, watches: new Set(), statuses: new HealStatuses(resolved.onStatus) };
  function status(): HealStatus[];
  function status(connId: string): HealStatus | undefined;
  function status(connId?: string): HealStatus[] | HealStatus | undefined {
    return connId !== undefined ? shared.statuses.get(connId) : shared.statuses.list();
  }
  return {
    name: ELEMENT,
    get watching() {
      return shared.watches.size;
    },
    status,
    dispose() {
      for (const w of [...shared.watches]) w.end();
      for (const owner of shared.statuses.owners()) owner.end();
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
