/**
 * Serving chains over gRPC: turns each incoming call into a CallContext (signal, deadline on the chain's
 * clock, logger with the method, peer identity from mTLS and the `nsm-client-token` metadata) and hands the
 * message to the chain. Errors leave as StatusErrors with their codes; the transport turns anything else
 * into `Internal`.
 */

import type { Connection } from "@nsm-ts/api/networkservice";
import { MonitorConnection, NetworkService } from "@nsm-ts/api/networkservice";
import { contextFromCall, type ServeOptions } from "@nsm-ts/base/context";
import type { NsmServer } from "@nsm-ts/base/grpc";
import { handler } from "./chain.js";
import type { MonitorConnectionServer, NetworkServiceElement } from "./types.js";

/**
 * Registers `networkservice.NetworkService` backed by `element` (and `connection.MonitorConnection` backed by
 * `monitor`, when given) on `server`; both names are marked SERVING in the health service.
 */
export function serveNetworkService(
  server: NsmServer,
  element: NetworkServiceElement,
  monitor?: MonitorConnectionServer,
  opts: ServeOptions = {},
): void {
  const h = handler(element);
  server.addService(NetworkService, {
    // The transport decodes a fresh message per call, so the chain may own it without a copy.
    request: (req, sctx) => h.request(contextFromCall(sctx, opts, connBindings(req.connection)), req),
    close: async (conn, sctx) => {
      await h.close(contextFromCall(sctx, opts, connBindings(conn)), conn);
      return {};
    },
  });
  if (monitor) {
    server.addService(MonitorConnection, {
      monitorConnections: (selector, sctx) => monitor.monitorConnections(contextFromCall(sctx, opts), selector),
    });
  }
}

/** Every line of a Request or Close names its connection and the path index. */
function connBindings(conn: Connection | undefined): Record<string, unknown> {
  return conn ? { connId: conn.id, pathIndex: conn.path?.index ?? 0 } : {};
}

export type { ServeOptions };
