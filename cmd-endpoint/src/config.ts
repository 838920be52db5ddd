/**
 * cmd-endpoint's environment table: upstream's names and defaults (cmd-nse-icmp-responder), plus the
 * option to take addresses from the resource manager (NSM_IPAM_URL + NSM_SUBNET) instead of a local CIDR.
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
    },
  },
);

/** cmd-endpoint's parsed configuration. */
export type Config = ConfigValues<typeof config.vars>;
