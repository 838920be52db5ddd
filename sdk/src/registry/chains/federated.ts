/**
 * Federated services: the backends of a service found in other domains, as a source the service model ranks below
 * its local endpoints. A source watches `service@domain` through this domain's registry (which sends it through
 * the nsmgr-proxy and the registry proxy to the other domain's registry) and reports each endpoint with its domain
 * and the source's priority; the URLs are this domain's nsmgr-proxy, so a connection to a federated backend takes
 * the interdomain route. The service model (a separate package) consumes `BackendSource`; nothing here depends
 * on it.
 */
import { create } from "@bufbuild/protobuf";
import { type NetworkServiceEndpoint, NetworkServiceEndpointSchema } from "@nsm-ts/api/registry";
import type { CallContext } from "@nsm-ts/base/context";
import { joinDomain, targetOf } from "../common/dnsresolve/index.js";
import type { NseHandler } from "../core/index.js";

/** One backend event of a source. */
export interface BackendEvent {
  /** The endpoint as this domain sees it (`nse@domain`, serving `service@domain`, URL: the local nsmgr-proxy). */
  readonly endpoint: NetworkServiceEndpoint;
  /** Its name in its own domain (`nse`). */
  readonly name: string;
  /** The domain it lives in; "" for local backends. */
  readonly domain: string;
  /** Lower is preferred: 0 for local backends, `FEDERATED_PRIORITY` and up for other domains. */
  readonly priority: number;
  /** True when the backend went away. */
  readonly deleted: boolean;
}

/** A source of backends for services, ranked by `priority`. */
export interface BackendSource {
  readonly domain: string;
  readonly priority: number;
  /** Current backends of `service`, then every change until `ctx` ends (its signal aborts). */
  watch(ctx: CallContext, service: string): AsyncIterable<BackendEvent>;
}

/** The priority of the first federated domain: below every local backend. */
export const FEDERATED_PRIORITY = 100;

/** Options of `createFederatedSource`. */
export interface FederatedSourceOptions {
  /** Priority of this domain's backends; default `FEDERATED_PRIORITY`. */
  priority?: number;
}

/** A source of the backends `domain` has for a service, found through `registry` (this domain's registry). */
export function createFederatedSource(registry: NseHandler, domain: string, opts: FederatedSourceOptions = {}): BackendSource {
  if (domain === "" || domain.includes("@")) throw new Error(`federated: invalid domain "${domain}"`);
  const priority = opts.priority ?? FEDERATED_PRIORITY;
  return {
    domain,
    priority,
    async *watch(ctx, service) {
      const template = create(NetworkServiceEndpointSchema, { networkServiceNames: [joinDomain(targetOf(service), domain)] });
      for await (const r of registry.find(ctx, { template, watch: true })) {
        yield { endpoint: r.entry, name: targetOf(r.entry.name), domain, priority, deleted: r.deleted };
      }
    },
  };
}

/** One registration change of another domain, in the shape the service model's registry sources read. */
export interface DomainNseEvent {
  readonly entry: NetworkServiceEndpoint;
  readonly deleted: boolean;
}

/**
 * Every endpoint of `domain`, through this domain's registry (a Find whose template is named `@domain`: the
 * registry proxy sends the other domain an empty template): the current ones, then with `watch` every change until
 * `signal` aborts. Names come back as `nse@domain`, URLs as this domain's nsmgr-proxy. This is the `find` of the
 * service model's lower-priority "remote" source (`startRegistrySource`), routed through the interdomain path
 * instead of a direct connection to the other cluster's registry.
 */
export function domainFind(
  registry: NseHandler,
  domain: string,
  ctxOf: (signal: AbortSignal) => CallContext,
): (signal: AbortSignal, watch: boolean) => AsyncIterable<DomainNseEvent> {
  if (domain === "" || domain.includes("@")) throw new Error(`federated: invalid domain "${domain}"`);
  return async function* (signal, watch) {
    const template = create(NetworkServiceEndpointSchema, { name: `@${domain}` });
    for await (const r of registry.find(ctxOf(signal), { template, watch })) yield { entry: r.entry, deleted: r.deleted };
  };
}
