/**
 * trimpath (server): the final endpoint returns the path only up to its own segment
 * (docs/wire-compatibility.md#trimpath), so stale segments from an earlier, longer path (e.g. before a reselect)
 * never travel back. A passthrough endpoint — one with a client chain after it — keeps the full path the next hop
 * returned: the `trimpath.newClient()` element in that client chain tells the server side not to trim.
 *
 * How the two sides talk: the server puts a mutable marker into the context (`trimMarkerKey`); the client
 * element, which only runs when the request leaves for a next hop, clears it. This keeps the decision with
 * the chain's shape instead of a configuration flag that could disagree with it.
 *
 * Placement: server chains, after `updatepath` (it trims relative to `path.index`); in a passthrough chain
 * add `trimpath.newClient()` anywhere in the client part.
 */
import { ContextKey } from "@nsm-ts/base/context";
import type { NetworkServiceServer } from "../../core/types.js";

/** The marker the server side hands down; `trim` is cleared by a client element after it. */
export interface TrimMarker {
  trim: boolean;
}

/** Context key of the trim marker. */
export const trimMarkerKey = new ContextKey<TrimMarker>("trimpath.marker");

/** Creates the server side. */
export function newServer(): NetworkServiceServer {
  return {
    name: "trimpath",
    async request(ctx, req, next) {
      const marker: TrimMarker = { trim: true };
      const conn = await next.request(ctx.with(trimMarkerKey, marker), req);
      const path = conn.path;
      if (marker.trim && path && path.pathSegments.length > path.index + 1) {
        path.pathSegments.length = path.index + 1;
      }
      return conn;
    },
    close: (ctx, conn, next) => next.close(ctx, conn),
  };
}
