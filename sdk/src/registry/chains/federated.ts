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
