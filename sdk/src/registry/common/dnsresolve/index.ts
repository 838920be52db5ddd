/** dnsresolve (registry): find another domain's registry with DNS and forward interdomain names to it. */
export { type DnsResolveOptions, domainOfEntry, mapNames, newServer } from "./dnsresolve.js";
export { domainOf, isDnsName, isInterdomain, joinDomain, targetOf } from "./names.js";
export {
  createDnsResolver,
  DEFAULT_NSMGR_PROXY_SERVICE,
  DEFAULT_REGISTRY_SERVICE,
  type DnsResolverOptions,
  type DomainResolver,
  resolveDomain,
  type SrvRecord,
} from "./resolver.js";
