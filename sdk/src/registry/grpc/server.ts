/**
 * Serving registry chains over gRPC: `registry.NetworkServiceRegistry` and `registry.NetworkServiceEndpointRegistry`
 * on an nsm-ts server. Each call becomes a CallContext (the common one of `contextFromCall`, plus the registry
 * `path` metadata — an empty one when an old client sends none) and the updated `path` goes back
 * in the response header of Register and Unregister.
 */

import { create } from "@bufbuild/protobuf";
import {
  NetworkServiceEndpointRegistry,
  NetworkServiceEndpointSchema,
  NetworkServiceRegistry,
  NetworkServiceSchema,
} from "@nsm-ts/api/registry";
import { type CallContext, contextFromCall, type ServeOptions } from "@nsm-ts/base/context";
import type { NsmServer, ServerCallContext } from "@nsm-ts/base/grpc";
import { emptyPath, formatPath, PATH_METADATA_KEY, parsePath, pathKey } from "../common/grpcmetadata/index.js";
import type { NseHandler, NsHandler, RegistryEntry, RegistryHandler } from "../core/index.js";

/** Options of `serveRegistry`. */
export type RegistryServeOptions = ServeOptions;

/**
 * The chain context of one incoming registry call: the common one plus, for Register and Unregister, the registry
 * `path` from the call's metadata (an empty one when an old client sends none). Find ignores any `path`.
 */
function registryContext(call: ServerCallContext, opts: RegistryServeOptions, withPath: boolean): CallContext {
  const ctx = contextFromCall(call, opts);
  if (!withPath) return ctx;
  const raw = call.metadata[PATH_METADATA_KEY];
  if (raw === undefined) ctx.log.debug("no path metadata (old client); starting an empty path");
  return ctx.with(pathKey, raw === undefined ? emptyPath() : parsePath(raw));
}

async function unary<R>(call: ServerCallContext, opts: RegistryServeOptions, fn: (ctx: CallContext) => Promise<R>): Promise<R> {
  const ctx = registryContext(call, opts, true);
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
  const ctx = registryContext(call, opts, false);
  // A watch whose client already went away has nothing to deliver; never start one on a dead stream.
  if (ctx.signal.aborted) return;
  for await (const r of h.find(ctx, { template, watch })) {
    if (ctx.signal.aborted) return;
    yield wrap(r.entry, r.deleted);
  }
}
