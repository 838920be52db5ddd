/**
 * monitor (server): records every connection this server establishes in a ConnectionMonitor — UPDATE
 * after a successful Request, DELETE after Close — so MonitorConnections subscribers (the previous hop's
 * heal, operators) see them. Downstream watchers mark connections DOWN through
 * `ConnectionMonitor.setState`.
 *
 * Reads: the connection returned by the rest of the chain. Placement: server chains after `updatepath`
 * and `begin` (so events for one connection are ordered), before the elements that may fail the Request.
 */
import { State } from "@nsm-ts/api/networkservice";
import type { NetworkServiceServer } from "../../core/types.js";
import type { ConnectionMonitor } from "./monitor.js";

/** Creates the element feeding `monitor`. */
export function newServer(monitor: ConnectionMonitor): NetworkServiceServer {
  return {
    name: "monitor",
    async request(ctx, req, next) {
      const conn = await next.request(ctx, req);
      // A successful Request means the connection is up, whatever state the caller sent (e.g. RESELECT_REQUESTED).
      monitor.update(conn, State.UP);
      return conn;
    },
    async close(ctx, conn, next) {
      try {
        await next.close(ctx, conn);
      } finally {
        monitor.delete(conn);
      }
    },
  };
}
