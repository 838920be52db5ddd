/**
 * cmd-nsmgr-proxy's environment table: upstream's names and defaults (cmd-nsmgr-proxy) where it has them, plus
 * the URL other domains reach this proxy at when it differs from what it binds.
 */
import { hostname } from "node:os";
import {
  type ConfigValues,
  commonVars,
  defineConfig,
  duration,
  serverVars,
  str,
  trustedHopsVars,
  url,
  urlList,
  validateCommon,
} from "@nsm-ts/base/config";

/** The table; `config.names()` is what manifests may set. */
export const config = defineConfig(
  {
    ...commonVars({ name: `nsmgr-proxy-${hostname()}`, nameLabel: "nsmgr-proxy-<hostname>" }),
    ...serverVars(),
    ...trustedHopsVars(),
    listenOn: {
      name: "NSM_LISTEN_ON",
      description: "URLs to serve on, comma separated: connections and registrations from this domain's registry and from other domains",
      default: "tcp://:5004",
      parse: urlList,
    },
    publishedUrl: {
      name: "NSM_PUBLISHED_URL",
      description:
        "The URL this domain's nsmgrs, forwarders and other domains reach this proxy at (published in the registries); unset: the first tcp URL of NSM_LISTEN_ON, a wildcard host replaced by this machine's address",
      parse: url,
    },
    registryUrl: {
      name: "NSM_REGISTRY_URL",
      description: "This domain's registry: where endpoints asked for from other domains are found",
      default: "tcp://registry:5002",
      parse: url,
    },
    registryProxyUrl: {
      name: "NSM_REGISTRY_PROXY_URL",
      description: "The registry proxy resolving other domains (cmd-registry with NSM_REGISTRY_MODE=proxy-dns)",
      default: "tcp://registry-proxy-dns:5003",
      parse: url,
    },
    mapIpFilePath: {
      name: "NSM_MAP_IP_FILE_PATH",
      description:
        "YAML map of internal to external addresses (and back) applied to published endpoint URLs; watched, a missing file is an empty map",
      default: "map-ip.yaml",
      parse: str,
    },
    dialTimeout: {
      name: "NSM_DIAL_TIMEOUT",
      description: "Timeout for dialling the next hop (another domain's proxy, a local nsmgr, a registry)",
      default: "750ms",
      parse: duration,
    },
    requestTimeout: {
      name: "NSM_REQUEST_TIMEOUT",
      description: "Longest time one Request may take through this proxy when the caller set no deadline",
      default: "15s",
      parse: duration,
    },
  },
  { validate: validateCommon },
);

/** cmd-nsmgr-proxy's parsed configuration. */
export type Config = ConfigValues<typeof config.vars>;
