/**
 * The typed client data planes and the CLI use: `servicesClient(channel)` gives a client per service, and
 * `followResolvedServices` keeps a resolved-services watch open across registry restarts, turning the stream into
 * upserts, deletes and a `synced` marker after each (re)connection, so a consumer can prune what vanished while
 * it was disconnected.
 */
import {
  BackendManager,
  FrontendManager,
  LocalRedirectManager,
  ReconcileState,
  type ReconcileStatus,
  type ResolvedService,
  ServiceDataPlane,
  ServiceManager,
} from "@nsm-ts/api/services";
import { type Clock, realClock } from "@nsm-ts/base/clock";
import { type Channel, type Client, createClient } from "@nsm-ts/base/grpc";
import { type Logger, silentLogger } from "@nsm-ts/base/log";
import { toStatusError } from "@nsm-ts/base/status";

/** Typed clients of every `nsmts.services.v1` service on one channel. */
export interface ServicesClient {
  readonly services: Client<typeof ServiceManager>;
  readonly frontends: Client<typeof FrontendManager>;
  readonly backends: Client<typeof BackendManager>;
  readonly localRedirects: Client<typeof LocalRedirectManager>;
  readonly dataPlane: Client<typeof ServiceDataPlane>;
}

/** Clients of the services API on `channel` (dial the registry's URL). */
export function servicesClient(channel: Channel): ServicesClient {
  return {
    services: createClient(ServiceManager, channel),
    frontends: createClient(FrontendManager, channel),
    backends: createClient(BackendManager, channel),
    localRedirects: createClient(LocalRedirectManager, channel),
    dataPlane: createClient(ServiceDataPlane, channel),
  };
}

/** One step of `followResolvedServices`. */
export type ResolvedServiceUpdate =
  | { readonly kind: "upsert"; readonly service: ResolvedService }
  | { readonly kind: "delete"; readonly name: string; readonly revision: string }
  /** Every current service has been sent since the last (re)connection; services not sent since are gone. */
  | { readonly kind: "synced"; readonly names: ReadonlySet<string> };

/** Options of `followResolvedServices`. */
export interface FollowOptions {
  /** This node's name: local redirects are applied for it. */
  readonly node: string;
  /** Only this service (default all). */
  readonly service?: string;
  readonly signal: AbortSignal;
  /** Pause before reconnecting after the stream failed; default 1000 ms. */
  readonly retryMs?: number;
  readonly clock?: Clock;
  readonly log?: Logger;
}

/**
 * Follows the resolved services for a node until `signal` aborts, reconnecting after failures. After each
 * (re)connection it yields the current services as upserts, deletes for services known before that are gone, then
 * `synced`. The iteration ends normally when `signal` aborts.
 */
export async function* followResolvedServices(
  client: Client<typeof ServiceDataPlane>,
  opts: FollowOptions,
): AsyncGenerator<ResolvedServiceUpdate> {
  const clock = opts.clock ?? realClock;
  const log = opts.log ?? silentLogger;
  const known = new Set<string>();
  while (!opts.signal.aborted) {
    const seen = new Set<string>();
    let synced = false;
    try {
      const stream = client.watchResolvedServices({ node: opts.node, service: opts.service ?? "" }, { signal: opts.signal });
      for await (const ev of stream) {
        if (ev.synced) {
          for (const n of [...known]) {
            if (seen.has(n)) continue;
            known.delete(n);
            yield { kind: "delete", name: n, revision: "0" };
          }
          synced = true;
          yield { kind: "synced", names: new Set(known) };
        } else if (ev.service !== undefined && ev.deleted) {
          known.delete(ev.service.name);
          yield { kind: "delete", name: ev.service.name, revision: ev.service.revision };
        } else if (ev.service !== undefined) {
          known.add(ev.service.name);
          if (!synced) seen.add(ev.service.name);
          yield { kind: "upsert", service: ev.service };
        }
      }
    } catch (err) {
      if (opts.signal.aborted) return;
      log.warn(
        { err: toStatusError(err).message, node: opts.node, retryMs: opts.retryMs ?? 1000 },
        "services: resolved-services watch failed; reconnecting",
      );
    }
    if (opts.signal.aborted) return;
    try {
      await clock.sleep(opts.retryMs ?? 1000, opts.signal);
    } catch {
      return;
    }
  }
}

/** Reports a node's reconcile status of a service (the data plane calls it after each attempt). */
export async function reportReconcileStatus(
  client: Client<typeof ServiceDataPlane>,
  status: { node: string; service: string; state: ReconcileState; message?: string; revision?: string },
  signal?: AbortSignal,
): Promise<ReconcileStatus> {
  return client.reportReconcileStatus(
    { node: status.node, service: status.service, state: status.state, message: status.message ?? "", revision: status.revision ?? "0" },
    signal === undefined ? {} : { signal },
  );
}

export { ReconcileState };
