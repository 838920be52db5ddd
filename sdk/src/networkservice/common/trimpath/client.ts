/**
 * trimpath (client): marks the request as passing through to a next hop, so the `trimpath` server element
 * before it keeps the full path in the response. Placement: the client part of passthrough chains
 * (nsmgr, forwarders, passthrough endpoints).
 */
import type { NetworkServiceClient } from "../../core/types.js";
import { trimMarkerKey } from "./server.js";

/** Creates the client side. */
export function newClient(): NetworkServiceClient {
  return {
    name: "trimpath-client",
    request(ctx, req, next) {
      const marker = trimMarkerKey.get(ctx);
      if (marker) marker.trim = false;
      return next.request(ctx.without(trimMarkerKey), req);
    },
    close: (ctx, conn, next) => next.close(ctx, conn),
  };
}
