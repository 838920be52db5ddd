/**
 * cmd-registry's environment table: upstream's variable names and defaults (cmd-registry-memory), plus the
 * store selection that lets several replicas share state through etcd.
 */
import { hostname } from "node:os";
import {
  ConfigError,
  type ConfigValues,
  cidr,
  commonVars,
  defineConfig,
  duration,
  int,
  list,
  oneOf,
  type StoreConfig,
  serverVars,
  spiffePatterns,
  storeUrl,
  url,
  urlList,
  validateCommon,
} from "@nsm-ts/base/config";
import { isSpiffeId } from "@nsm-ts/base/identity";
import { parseServerAddress } from "@nsm-ts/sdk/dns";
import { dnsresolve } from "@nsm-ts/sdk/registry";

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

/** Parses a DNS name (the domain of `name@domain`). */
export function dnsDomain(raw: string): string {
  const d = raw.trim();
  if (!dnsresolve.isDnsName(d)) throw new Error(`invalid domain ${JSON.stringify(raw)}: expected a DNS name such as cluster-b.example`);
  return d;
}

/** Parses a comma list of DNS servers (`ip`, `ip:port`, `[ipv6]:port`). */
export function dnsServerList(raw: string): string[] {
  const servers = list(raw);
  for (const s of servers)
    if (parseServerAddress(s) === undefined)
      throw new Error(`invalid DNS server ${JSON.stringify(s)}: expected ip, ip:port or [ipv6]:port`);
  if (servers.length === 0) throw new Error("expected at least one DNS server");
  return servers;
}

/** Parses a comma list of SPIFFE ID patterns, where `*` matches any run of characters (`spiffe://td/nsmgr-*`). */
export const parseSpiffePatterns = spiffePatterns;

/** A `tcp://host:port` listen URL. */
function connectUrl(raw: string): string {
  const [u] = urlList(raw);
  if (u === undefined || !u.startsWith("tcp://")) throw new Error(`expected tcp://host:port or off, got ${JSON.stringify(raw)}`);
  return u;
}

/** An `ip:port` (`[ipv6]:port`) listen address. */
function hostPort(raw: string): string {
  const v = raw.trim();
  if (!/^(\[[0-9a-fA-F:.]+\]|[0-9.]+):\d{1,5}$/.test(v)) throw new Error(`expected ip:port or off, got ${JSON.stringify(raw)}`);
  return v;
}

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
    connectListenOn: {
      name: "NSM_CONNECT_LISTEN_ON",
      description:
        "tcp://host:port to serve the resource managers and the services API with the Connect protocol too (JSON over HTTP, curl-friendly; no TLS: " +
        "with TLS configured it serves reads and watches only); off = not served",
      default: "off",
      parse: (raw: string): string | undefined => (raw.trim() === "off" ? undefined : connectUrl(raw)),
    },
    nodeHeartbeatTimeout: {
      name: "NSM_NODE_HEARTBEAT_TIMEOUT",
      description: "Time without a heartbeat after which a node (nsmts.resources.v1.NodeManager) goes out of service",
      default: "30s",
      parse: duration,
    },
    resourcesDnsListenOn: {
      name: "NSM_RESOURCES_DNS_LISTEN_ON",
      description: "ip:port to answer the DNS records (nsmts.resources.v1.DnsRecordManager) on, UDP and TCP; off = not served",
      default: "off",
      parse: (raw: string): string | undefined => (raw.trim() === "off" ? undefined : hostPort(raw)),
    },
    mode: {
      name: "NSM_REGISTRY_MODE",
      description:
        "registry (stores entries) or proxy-dns (the registry proxy of interdomain names: stores nothing, sends name@domain to the registry that DNS names for the domain)",
      default: "registry",
      parse: oneOf(["registry", "proxy-dns"] as const),
    },
    proxyRegistryUrl: {
      name: "NSM_PROXY_REGISTRY_URL",
      description:
        "Where interdomain names (name@domain) go instead of the stores: this domain's nsmgr-proxy (unset: such names are refused with FailedPrecondition)",
      parse: url,
    },
    dnsServers: {
      name: "NSM_DNS_SERVERS",
      description:
        "proxy-dns mode: DNS servers to resolve domains with (ip or ip:port, comma separated); unset: the nameservers of /etc/resolv.conf",
      parse: dnsServerList,
    },
    dnsQueryTimeout: {
      name: "NSM_DNS_QUERY_TIMEOUT",
      description: "proxy-dns mode: time one DNS query may take before the next server is asked (never past the call's deadline)",
      default: "2s",
      parse: duration,
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
    servicesRemoteDomain: {
      name: "NSM_SERVICES_REMOTE_DOMAIN",
      description:
        "Another domain (DNS name) whose NSEs become lower-priority service backends (source remote), found through NSM_PROXY_REGISTRY_URL's interdomain path; instead of NSM_SERVICES_REMOTE_REGISTRY_URL",
      parse: dnsDomain,
    },
    servicesRemoteRetry: {
      name: "NSM_SERVICES_REMOTE_RETRY",
      description: "Pause before reopening a failed watch of the remote source (its backends are dropped meanwhile)",
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
  {
    validate: (v) => {
      validateCommon(v);
      if (v.servicesRemoteDomain !== undefined && v.servicesRemoteRegistryUrl !== undefined)
        throw new ConfigError(
          "NSM_SERVICES_REMOTE_DOMAIN",
          "set either it or NSM_SERVICES_REMOTE_REGISTRY_URL (one remote source: a domain or a registry URL)",
        );
      if (v.servicesRemoteDomain !== undefined && v.proxyRegistryUrl === undefined)
        throw new ConfigError(
          "NSM_SERVICES_REMOTE_DOMAIN",
          "needs NSM_PROXY_REGISTRY_URL (another domain is reached through the nsmgr-proxy)",
        );
    },
  },
);

/** cmd-registry's parsed configuration. */
export type Config = ConfigValues<typeof config.vars>;
