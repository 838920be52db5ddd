/**
 * Serving registry chains over gRPC: `registry.NetworkServiceRegistry` and `registry.NetworkServiceEndpointRegistry`
 * on an nsm-ts server. Each call becomes a CallContext (signal, peer TLS identity, the per-RPC token of contract
 * §7.1, the registry `path` of §7.2 — an empty one when an old client sends none) and the updated `path` goes back
 * in the response header of Register and Unregister.
 */

import { create } from "@bufbuild/protobuf";
import {
  NetworkServiceEndpointRegistry,
  NetworkServiceEndpointSchema,
  NetworkServiceRegistry,
  NetworkServiceSchema,
} from "@nsm-ts/api/registry";
import { type Clock, realClock } from "@nsm-ts/base/clock";
import { CallContext, traceKey } from "@nsm-ts/base/context";
import type { NsmServer, ServerCallContext } from "@nsm-ts/base/grpc";
import { spiffeIdOf } from "@nsm-ts/base/identity";
import { type Logger, silentLogger } from "@nsm-ts/base/log";
import { tokenFromMetadata } from "@nsm-ts/base/token";
import { traceOfCall } from "@nsm-ts/base/tracing";
import { emptyPath, formatPath, PATH_METADATA_KEY, parsePath, pathKey } from "../common/grpcmetadata/index.js";
import type { NseHandler, NsHandler, RegistryEntry, RegistryHandler } from "../core/index.js";

/** Options of `serveRegistry` and `contextFromCall`. */
export interface RegistryServeOptions {
  /** Time source of the chains (MockClock in tests); default the real clock. */
  clock?: Clock;
  /** Logger of the calls; default silent. */
  log?: Logger;
}

/**
 * The chain context of one incoming registry call (see the header comment). `withPath` false (Find) ignores any
 * `path` metadata, as the path belongs to Register and Unregister only.
 */
export function contextFromCall(call: ServerCallContext, opts: RegistryServeOptions = {}, withPath = true): CallContext {
  const clock = opts.clock ?? realClock;
  const token = tokenFromMetadata(call.metadataAll);
  const cert = call.peerCertificate;
  const spiffeId = cert === undefined ? undefined : spiffeIdOf(cert);
  const raw = withPath ? call.metadata[PATH_METADATA_KEY] : undefined;
  const log = (opts.log ?? silentLogger).child({ method: call.method });
  if (withPath && raw === undefined) log.debug("no path metadata (old client); starting an empty path");
  // One trace-level line per call (the level SIGUSR1 switches on); free when trace is off.
  if (log.isLevelEnabled("trace")) log.trace({ peer: call.peer }, "call received");
  const ctx = CallContext.create({
    signal: call.signal,
    // A client's deadline is wall-clock time; it only means something to chains running on the real clock.
    ...(clock === realClock && call.deadline !== undefined ? { deadline: call.deadline.getTime() } : {}),
    log,
    clock,
    peer: {
      ...(spiffeId === undefined ? {} : { spiffeId }),
      ...(cert === undefined ? {} : { certificate: cert }),
      ...(token === undefined ? {} : { token }),
      address: call.peer,
    },
  });
  const t = traceOfCall(call);
  const traced = t ? ctx.with(traceKey, t) : ctx;
  return withPath ? traced.with(pathKey, raw === undefined ? emptyPath() : parsePath(raw)) : traced;
}

async function unary<R>(call: ServerCallContext, opts: RegistryServeOptions, fn: (ctx: CallContext) => Promise<R>): Promise<R> {
  const ctx = contextFromCall(call, opts);
  const res = await fn(ctx);
  const path = pathKey.get(ctx);
  if (path !== undefined) call.setHeader(PATH_METADATA_KEY, formatPath(path));
  return res;
}

/** Serves the given handlers (either or both) on `server`; the server marks each service SERVING in health. */
export function serveRegistry(server: NsmServer, handlers: { ns?: NsHandler; nse?: NseHandler }, opts: RegistryServeOptions = {}): void {
  const { ns, nse } = handlers;
  if (ns !== undefined) {
    server.addService(NetworkServiceRegistry, {
      register: (req, call) => unary(call, opts, (ctx) => ns.register(ctx, req)),
      find: (query, call) =>
        findStream(ns, call, opts, query.networkService ?? create(NetworkServiceSchema), query.watch, (entry, deleted) => ({
          networkService: entry,
          deleted,
        })),
      unregister: (req, call) =>
        unary(call, opts, async (ctx) => {
          await ns.unregister(ctx, req);
          return {};
        }),
    });
  }
  if (nse !== undefined) {
    server.addService(NetworkServiceEndpointRegistry, {
      register: (req, call) => unary(call, opts, (ctx) => nse.register(ctx, req)),
      find: (query, call) =>
        findStream(
          nse,
          call,
          opts,
          query.networkServiceEndpoint ?? create(NetworkServiceEndpointSchema),
          query.watch,
          (entry, deleted) => ({ networkServiceEndpoint: entry, deleted }),
        ),
      unregister: (req, call) =>
        unary(call, opts, async (ctx) => {
          await nse.unregister(ctx, req);
          return {};
        }),
    });
  }
}

async function* findStream<T extends RegistryEntry, O>(
  h: RegistryHandler<T>,
  call: ServerCallContext,
  opts: RegistryServeOptions,
  template: T,
  watch: boolean,
  wrap: (entry: T, deleted: boolean) => O,
): AsyncGenerator<O> {
  const ctx = contextFromCall(call, opts, false);
  // A watch whose client already went away has nothing to deliver; never start one on a dead stream.
  if (ctx.signal.aborted) return;
  for await (const r of h.find(ctx, { template, watch })) {
    if (ctx.signal.aborted) return;
    yield wrap(r.entry, r.deleted);
  }
}
