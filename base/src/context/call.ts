/**
 * The one way an incoming gRPC call becomes a CallContext, for the registry and the networkservice servers
 * alike: the call's signal; its deadline translated onto the chain's clock (the wire deadline is wall-clock
 * time, so the remaining time is kept and measured on the chain's clock, which may be a mock); a logger with the
 * method and the caller's bindings; the peer from mTLS, `nsm-client-token` and the transport; the call's trace.
 */
import { type Clock, realClock } from "../clock/index.js";
import type { ServerCallContext } from "../grpc/index.js";
import { spiffeIdOf } from "../identity/index.js";
import { type Logger, silentLogger } from "../log/index.js";
import { tokenFromMetadata } from "../token/index.js";
import { traceOfCall } from "../tracing/index.js";
import { CallContext } from "./context.js";
import { traceKey } from "./trace.js";

/** Options of everything that serves a chain. */
export interface ServeOptions {
  /** Clock of the chain; the incoming deadline is translated onto it. Default: real clock. */
  clock?: Clock;
  /** Base logger; each call gets a child with the method. Default: silent. */
  log?: Logger;
}

/** The chain context of one incoming call; `bindings` are added to its logger (e.g. the connection id). */
export function contextFromCall(sctx: ServerCallContext, opts: ServeOptions = {}, bindings: Record<string, unknown> = {}): CallContext {
  const clock = opts.clock ?? realClock;
  const deadline = sctx.deadline ? clock.now() + (sctx.deadline.getTime() - Date.now()) : undefined;
  const cert = sctx.peerCertificate;
  const spiffeId = cert === undefined ? undefined : spiffeIdOf(cert);
  const token = tokenFromMetadata(sctx.metadataAll);
  const ctx = CallContext.create({
    signal: sctx.signal,
    deadline,
    clock,
    log: (opts.log ?? silentLogger).child({ method: sctx.method, ...bindings }),
    peer: {
      address: sctx.peer,
      ...(cert === undefined ? {} : { certificate: cert }),
      ...(spiffeId === undefined ? {} : { spiffeId }),
      ...(token === undefined ? {} : { token }),
    },
  });
  // One trace-level line per call (the level SIGUSR1 switches on); free when trace is off.
  if (ctx.log.isLevelEnabled("trace")) ctx.log.trace({ peer: sctx.peer }, "call received");
  const t = traceOfCall(sctx);
  return t ? ctx.with(traceKey, t) : ctx;
}
