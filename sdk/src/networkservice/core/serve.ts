/**
 * Serving chains over gRPC: turns each incoming call into a CallContext (signal, deadline on the chain's
 * clock, logger with the method, peer identity from mTLS and the `nsm-client-token` metadata) and hands the
 * message to the chain. Errors leave as StatusErrors with their codes; the transport turns anything else
 * into `Internal`.
 */

import type { Connection } from "@nsm-ts/api/networkservice";
import { MonitorConnection, NetworkService } from "@nsm-ts/api/networkservice";
import { type Clock, realClock } from "@nsm-ts/base/clock";
import { CallContext, traceKey } from "@nsm-ts/base/context";
import type { NsmServer, ServerCallContext } from "@nsm-ts/base/grpc";
import { spiffeIdOf } from "@nsm-ts/base/identity";
import { type Logger, silentLogger } from "@nsm-ts/base/log";
import { tokenFromMetadata } from "@nsm-ts/base/token";
import { traceOfCall } from "@nsm-ts/base/tracing";
import { handler } from "./chain.js";
import type { MonitorConnectionServer, NetworkServiceElement } from "./types.js";

/** Options shared by everything that serves a chain. */
export interface ServeOptions {
  /** Clock of the chain; the incoming deadline is translated onto it. Default: real clock. */
  clock?: Clock;
  /** Base logger; each call gets a child with the method. Default: silent. */
  log?: Logger;
}

/**
 * Builds the chain context of one incoming call. With `conn` (Request and Close) the logger carries its
 * connection id and path index, so every line of the request names the connection.
 */
export function contextFromCall(sctx: ServerCallContext, opts: ServeOptions = {}, conn?: Connection): CallContext {
  const clock = opts.clock ?? realClock;
  // The wire deadline is wall-clock time; keep the remaining time, measured on the chain's clock.
  const deadline = sctx.deadline ? clock.now() + (sctx.deadline.getTime() - Date.now()) : undefined;
  const cert = sctx.peerCertificate;
  const token = tokenFromMetadata(sctx.metadataAll);
  const bindings: Record<string, unknown> = { method: sctx.method };
  if (conn) {
    bindings.connId = conn.id;
    bindings.pathIndex = conn.path?.index ?? 0;
  }
  const ctx = CallContext.create({
    signal: sctx.signal,
    deadline,
    clock,
    log: (opts.log ?? silentLogger).child(bindings),
    peer: {
      address: sctx.peer,
      ...(cert ? { certificate: cert, spiffeId: spiffeIdOf(cert) } : {}),
      ...(token ? { token } : {}),
    },
  });
  // One trace-level line per call (the level SIGUSR1 switches on); free when trace is off.
  if (ctx.log.isLevelEnabled("trace")) ctx.log.trace({ peer: sctx.peer }, "call received");
  const t = traceOfCall(sctx);
  return t ? ctx.with(traceKey, t) : ctx;
}

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
    request: (req, sctx) => h.request(contextFromCall(sctx, opts, req.connection), req),
    close: async (conn, sctx) => {
      await h.close(contextFromCall(sctx, opts, conn), conn);
      return {};
    },
  });
  if (monitor) {
    server.addService(MonitorConnection, {
      monitorConnections: (selector, sctx) => monitor.monitorConnections(contextFromCall(sctx, opts), selector),
    });
  }
}
