/**
 * cmd-endpoint's environment table: upstream's names and defaults (cmd-nse-icmp-responder, NSM_DNS_CONFIGS
 * included), plus the option to take addresses from the resource manager (NSM_IPAM_URL + NSM_SUBNET) instead of a
 * local CIDR.
 */
import { hostname } from "node:os";
import { Payload } from "@nsm-ts/api/constants";
import {
  atLeastOne,
  bool,
  ConfigError,
  type ConfigValues,
  cidrList,
  commonVars,
  defineConfig,
  duration,
  labels,
  list,
  nonEmpty,
  oneOf,
  serverVars,
  trustedHopsVars,
  url,
  validateCommon,
} from "@nsm-ts/base/config";
import { parseServerAddress } from "@nsm-ts/sdk/dns";

/** A DNS config as NSM_DNS_CONFIGS gives it (upstream's JSON field names; camelCase accepted too). */
export interface DnsConfigValue {
  dnsServerIps: string[];
  searchDomains: string[];
}

/** NSM_DNS_CONFIGS: a JSON array of DNS configs, each server an IP or ip:port. */
function dnsConfigs(raw: string): DnsConfigValue[] {
  let v: unknown;
  try {
    v = JSON.parse(raw);
  } catch {
    throw new Error(`invalid JSON ${JSON.stringify(raw)}: expected [{"dns_server_ips": [...], "search_domains": [...]}]`);
  }
  if (!Array.isArray(v)) throw new Error("expected a JSON array of DNS configs");
  const strings = (x: unknown, what: string): string[] => {
    if (x === undefined) return [];
    if (!Array.isArray(x) || x.some((e) => typeof e !== "string")) throw new Error(`${what} must be an array of strings`);
    return x as string[];
  };
  return v.map((c: unknown, i) => {
    if (typeof c !== "object" || c === null) throw new Error(`config ${i} must be an object`);
    const o = c as Record<string, unknown>;
    const dnsServerIps = strings(o.dns_server_ips ?? o.dnsServerIps, `config ${i}: dns_server_ips`);
    const bad = dnsServerIps.find((s) => parseServerAddress(s) === undefined);
    if (bad !== undefined) throw new Error(`config ${i}: ${JSON.stringify(bad)} is not an IP or ip:port`);
    if (dnsServerIps.length === 0) throw new Error(`config ${i}: dns_server_ips is empty`);
    return { dnsServerIps, searchDomains: strings(o.search_domains ?? o.searchDomains, `config ${i}: search_domains`) };
  });
}

/** The table; `config.names()` is what manifests may set. */
export const config = defineConfig(
  {
    ...commonVars({ name: `endpoint-${hostname()}`, nameLabel: "endpoint-<hostname>" }),
    ...serverVars(),
    ...trustedHopsVars(),
    listenOn: {
      name: "NSM_LISTEN_ON",
      description: "URL to serve on; unset = a unix socket in a new temp directory, registered for the node's nsmgr",
      parse: url,
    },
    connectTo: {
      name: "NSM_CONNECT_TO",
      description: "Where to register: the node's nsmgr (or a registry directly when there is none)",
      default: "unix:///var/lib/networkservicemesh/nsm.io.sock",
      parse: url,
    },
    serviceNames: {
      name: "NSM_SERVICE_NAMES",
      description: "Network services this endpoint provides, comma separated",
      required: true,
      parse: atLeastOne(list),
    },
    labels: {
      name: "NSM_LABELS",
      description: "Labels of the registration for every service, key:value,key:value",
      default: "",
      parse: labels,
    },
    cidrPrefix: {
      name: "NSM_CIDR_PREFIX",
      description: "Prefixes to hand out point-to-point address pairs from, comma separated (IPv4 and/or IPv6)",
      default: "169.254.0.0/16",
      parse: atLeastOne(cidrList),
    },
    ipamPolicy: {
      name: "NSM_IPAM_POLICY",
      description: "polite: keep addresses the client sent; strict: replace them unless all are inside our prefixes",
      default: "polite",
      parse: oneOf(["polite", "strict"]),
    },
    ipamUrl: {
      name: "NSM_IPAM_URL",
      description: "Resource manager (the registry) to take addresses from instead of NSM_CIDR_PREFIX; needs NSM_SUBNET",
      parse: url,
    },
    subnet: {
      name: "NSM_SUBNET",
      description: "Subnet id in the resource manager at NSM_IPAM_URL to allocate addresses from",
      parse: nonEmpty,
    },
    securityGroups: {
      name: "NSM_SECURITY_GROUPS",
      description:
        "Comma-separated security group ids given to every port created at NSM_IPAM_URL; a forwarder with NSM_RESOURCES_URL enforces them on the client's interface",
      default: "",
      parse: list,
    },
    registerService: {
      name: "NSM_REGISTER_SERVICE",
      description: "Also register the network services (not only the endpoint) at start",
      default: "true",
      parse: bool,
    },
    payload: {
      name: "NSM_PAYLOAD",
      description: "Payload of the registered services: ETHERNET (upstream's default for this endpoint) or IP",
      default: Payload.ETHERNET,
      parse: oneOf([Payload.ETHERNET, Payload.IP]),
    },
    dnsConfigs: {
      name: "NSM_DNS_CONFIGS",
      description:
        'DNS configs handed to every client, JSON: [{"dns_server_ips": ["ip" or "ip:port", ...], "search_domains": ["domain", ...]}, ...]',
      default: "[]",
      parse: dnsConfigs,
    },
    idleTimeout: {
      name: "NSM_IDLE_TIMEOUT",
      description: "Exit after this long without connections (Go duration); 0 = never",
      default: "0",
      parse: duration,
    },
  },
  {
    validate(cfg) {
      validateCommon(cfg);
      if ((cfg.ipamUrl === undefined) !== (cfg.subnet === undefined)) {
        const missing = cfg.ipamUrl === undefined ? "NSM_IPAM_URL" : "NSM_SUBNET";
        throw new ConfigError(missing, "NSM_IPAM_URL and NSM_SUBNET must be set together or not at all");
      }
      if (cfg.securityGroups.length > 0 && cfg.ipamUrl === undefined)
        throw new ConfigError("NSM_SECURITY_GROUPS", "needs NSM_IPAM_URL and NSM_SUBNET (security groups belong to ports)");
    },
  },
);

/** cmd-endpoint's parsed configuration. */
export type Config = ConfigValues<typeof config.vars>;
