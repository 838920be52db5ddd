/**
 * cmd-registry's environment table: upstream's variable names and defaults (cmd-registry-memory), plus the
 * store selection that lets several replicas share state through etcd.
 */
import { hostname } from "node:os";
import {
  type ConfigValues,
  cidr,
  commonVars,
  defineConfig,
  duration,
  int,
  list,
  type StoreConfig,
  serverVars,
  spiffePatterns,
  storeUrl,
  url,
  urlList,
  validateCommon,
} from "@nsm-ts/base/config";
import { isSpiffeId } from "@nsm-ts/base/identity";

/** Where registrations live: memory (one process) or an etcd cluster shared by every replica. */
export type RegistryStore = StoreConfig;

/** Parses `memory` or `etcd://host:port[,host:port…]`. */
export const parseRegistryStore: (raw: string) => RegistryStore = storeUrl;

/** Parses a comma list of SPIFFE IDs (`spiffe://trust-domain/path`). */
export function parseSpiffeIds(raw: string): string[] {
  const ids = list(raw);
  for (const id of ids)
    if (!isSpiffeId(id)) throw new Error(`invalid SPIFFE ID ${JSON.stringify(id)}: expected spiffe://trust-domain/path`);
  return ids;
}

/** Parses a comma list of SPIFFE ID patterns, where `*` matches any run of characters (`spiffe://td/nsmgr-*`). */
export const parseSpiffePatterns = spiffePatterns;

/** The table; `config.names()` is what manifests may set. */
export const config = defineConfig(
  {
    ...commonVars({ name: `registry-${hostname()}`, nameLabel: "registry-<hostname>" }),
    ...serverVars(),
    listenOn: {
      name: "NSM_LISTEN_ON",
      description: "URLs to serve the registry on, comma separated (tcp://host:port, unix:///path)",
      default: "tcp://:5002",
      parse: urlList,
    },
    registryStore: {
      name: "NSM_REGISTRY_STORE",
      description: "memory (this process only) or etcd://host:port[,host:port] (shared by replicas, survives restarts)",
      default: "memory",
      parse: parseRegistryStore,
    },
    ipamPrefixPool: {
      name: "NSM_IPAM_PREFIX_POOL",
      description: "vL3 prefix pool served on ipam.IPAM/ManagePrefixes, e.g. 169.254.0.0/16 (unset: not served)",
      parse: cidr,
    },
    ipamPrefixLength: {
      name: "NSM_IPAM_PREFIX_LENGTH",
      description: "Length of the prefixes handed out from NSM_IPAM_PREFIX_POOL",
      default: "24",
      parse: int({ min: 1, max: 128 }),
    },
    expirePeriod: {
      name: "NSM_EXPIRE_PERIOD",
      description: "Longest time a registration lives without a refresh (also capped by the registrant's token expiry)",
      default: "1m",
      parse: duration,
    },
    registrars: {
      name: "NSM_REGISTRARS",
      description:
        "SPIFFE ID patterns (comma separated, * = any characters) of the peers that may register on behalf of others (multi-hop registry paths); unset: IDs whose last path segment starts with nsmgr",
      defaultLabel: "nsmgr rule",
      parse: parseSpiffePatterns,
    },
    servicesRoundRobinRange: {
      name: "NSM_SERVICES_ROUND_ROBIN_RANGE",
      description:
        "CIDR the ServiceIPs of round-robin frontends are allocated from, e.g. 169.254.200.0/24 (unset: frontends must name their address)",
      parse: cidr,
    },
    servicesClosestRange: {
      name: "NSM_SERVICES_CLOSEST_RANGE",
      description: "CIDR the ServiceIPs of closest-instance frontends are allocated from (unset: frontends must name their address)",
      parse: cidr,
    },
    servicesConsistentHashRange: {
      name: "NSM_SERVICES_CONSISTENT_HASH_RANGE",
      description:
        "CIDR the ServiceIPs of consistent-hash (session affinity) frontends are allocated from (unset: frontends must name their address)",
      parse: cidr,
    },
    servicesInstanceRange: {
      name: "NSM_SERVICES_INSTANCE_RANGE",
      description: "CIDR each service instance (backend address) gets a stable instance IP from (unset: no instance IPs)",
      parse: cidr,
    },
    servicesRemoteRegistryUrl: {
      name: "NSM_SERVICES_REMOTE_REGISTRY_URL",
      description:
        "Another cluster's registry (tcp://host:port) whose NSEs become lower-priority service backends (source remote); unset: none",
      parse: url,
    },
    servicesRemoteRetry: {
      name: "NSM_SERVICES_REMOTE_RETRY",
      description: "Pause before reopening a failed watch of NSM_SERVICES_REMOTE_REGISTRY_URL (its backends are dropped meanwhile)",
      default: "1s",
      parse: duration,
    },
    resourcesAdmins: {
      name: "NSM_RESOURCES_ADMINS",
      description:
        "SPIFFE IDs (comma separated) that may update, release and delete resource records other identities created (with TLS only)",
      parse: parseSpiffeIds,
    },
  },
  { validate: validateCommon },
);

/** cmd-registry's parsed configuration. */
export type Config = ConfigValues<typeof config.vars>;
