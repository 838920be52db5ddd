/**
 * dnsresolve (registry server, registry proxy): forwards an interdomain entry or query (`name@domain`, or an
 * endpoint serving `service@domain`) to the registry of that domain. It finds the registry with DNS
 * (`registry.nsm-system.<domain>`, see `resolveDomain`), strips `@domain` from the names it sends and puts it back
 * on the names it returns. On an endpoint Find it also replaces each result's URL with the domain's nsmgr-proxy
 * (`nsmgr-proxy.nsm-system.<domain>`), so connections enter that domain through its edge; a domain without one
 * (a floating registry) keeps the URLs its registry stored. Writes: context value `connect.urlKey` (the registry
 * to call). Place right before `connect.newClient(kind, connect.fromContext(pool))`. An entry without a domain is
 * `InvalidArgument`: a registry proxy serves interdomain names only.
 */
import type { NetworkService, NetworkServiceEndpoint } from "@nsm-ts/api/registry";
import type { CallContext } from "@nsm-ts/base/context";
import { Code, fail } from "@nsm-ts/base/status";
import type { FindResult, RegistryElement, RegistryEntry } from "../../core/index.js";
import { urlKey } from "../connect/index.js";
import { cloneEntry, isEndpoint } from "../entry.js";
import { domainOf, isInterdomain, joinDomain, targetOf } from "./names.js";
import { DEFAULT_NSMGR_PROXY_SERVICE, DEFAULT_REGISTRY_SERVICE, type DomainResolver, resolveDomain } from "./resolver.js";

/** Options of `dnsresolve.newServer`. */
export interface DnsResolveOptions {
  /** Service name of a domain's registry; default `registry.nsm-system`. */
  registryService?: string;
  /** Service name of a domain's nsmgr-proxy; default `nsmgr-proxy.nsm-system`. */
  nsmgrProxyService?: string;
}

/** The domain an entry belongs to: its own name's, else the first interdomain service's; "" for none. */
export function domainOfEntry(entry: RegistryEntry): string {
  if (isInterdomain(entry.name)) return domainOf(entry.name);
  if (isEndpoint(entry)) for (const s of entry.networkServiceNames) if (isInterdomain(s)) return domainOf(s);
  return "";
}

/** A copy of `entry` with every name (its own, an endpoint's services and their label keys) mapped by `f`. */
export function mapNames<T extends RegistryEntry>(entry: T, f: (name: string) => string): T {
  const c = cloneEntry(entry);
  c.name = f(c.name);
  if (isEndpoint(c)) {
    const e = c as NetworkServiceEndpoint;
    e.networkServiceNames = e.networkServiceNames.map(f);
    e.networkServiceLabels = Object.fromEntries(Object.entries(e.networkServiceLabels).map(([k, v]) => [f(k), v]));
  }
  return c;
}

/** Creates the element; `resolver` answers the DNS questions. */
export function newServer<T extends RegistryEntry = NetworkService | NetworkServiceEndpoint>(
  resolver: DomainResolver,
  opts: DnsResolveOptions = {},
): RegistryElement<T> {
  const registryService = opts.registryService ?? DEFAULT_REGISTRY_SERVICE;
  const proxyService = opts.nsmgrProxyService ?? DEFAULT_NSMGR_PROXY_SERVICE;
  const domainFor = (entry: T, field: string): string =>
    domainOfEntry(entry) || fail(Code.InvalidArgument, `dnsresolve: ${field} "${entry.name}" names no domain (expected name@domain)`);
  const route = async (ctx: CallContext, domain: string): Promise<CallContext> =>
    ctx.with(urlKey, await resolveDomain(ctx, resolver, registryService, domain));
  const strip = (name: string): string => targetOf(name);
  return {
    name: "dnsresolve",
    async register(ctx, entry, next) {
      const domain = domainFor(entry, "name");
      const out = await next.register(await route(ctx, domain), mapNames(entry, strip));
      return mapNames(out, (n) => joinDomain(n, domain));
    },
    async *find(ctx, query, next): AsyncIterable<FindResult<T>> {
      const domain = domainFor(query.template, "template");
      const c = await route(ctx, domain);
      let proxyUrl: string | undefined;
      if (isEndpoint(query.template)) {
        try {
          proxyUrl = await resolveDomain(ctx, resolver, proxyService, domain);
        } catch (err) {
          // A floating registry has no nsmgr-proxy: its entries already carry the URL of the domain they came from.
          ctx.log.debug({ domain, err }, "dnsresolve: no nsmgr-proxy in the domain, keeping the registered URLs");
        }
      }
      for await (const r of next.find(c, { template: mapNames(query.template, strip), watch: query.watch })) {
        const entry = mapNames(r.entry, (n) => joinDomain(n, domain));
        if (proxyUrl !== undefined && isEndpoint(entry)) entry.url = proxyUrl;
        yield { entry, deleted: r.deleted };
      }
    },
    async unregister(ctx, entry, next) {
      const domain = domainFor(entry, "name");
      await next.unregister(await route(ctx, domain), mapNames(entry, strip));
    },
  };
}
