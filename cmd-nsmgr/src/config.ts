/**
 * cmd-nsmgr's environment table: upstream's names and defaults (cmd-nsmgr), plus the node/pod/cluster
 * names its clientinfo element stamps on connections and registrations (upstream reads them from the
 * environment inside the element; here the program passes them in).
 */
import { hostname } from "node:os";
import { FORWARDER_NETWORK_SERVICE } from "@nsm-ts/api/constants";
import {
  type ConfigValues,
  commonVars,
  defineConfig,
  duration,
  nonEmpty,
  serverVars,
  str,
  trustedHopsVars,
  url,
  urlList,
  validateCommon,
} from "@nsm-ts/base/config";

/**
 * The node socket every local client, endpoint and forwarder dials; upstream's default
 * (docs/wire-compatibility.md#program-defaults).
 */
export const DEFAULT_NSM_SOCKET = "unix:///var/lib/networkservicemesh/nsm.io.sock";

/** The table; `config.names()` is what manifests may set. */
export const config = defineConfig(
  {
    ...commonVars({ name: `nsmgr-${hostname()}`, nameLabel: "nsmgr-<hostname>" }),
    ...serverVars(),
    ...trustedHopsVars(),
    listenOn: {
      name: "NSM_LISTEN_ON",
      description: "URLs to serve on, comma separated: the node socket for local clients and a tcp URL for remote nsmgrs",
      default: `${DEFAULT_NSM_SOCKET},tcp://:5001`,
      parse: urlList,
    },
    registryUrl: {
      name: "NSM_REGISTRY_URL",
      description: "The cluster registry (tcp://host:port or unix:///path)",
      default: "tcp://127.0.0.1:5002",
      parse: url,
    },
    nodeName: {
      name: "NODE_NAME",
      description: "This node's name: the nodeName label on connections and on local NSE registrations",
      default: hostname(),
      defaultLabel: "<hostname>",
      parse: nonEmpty,
    },
    podName: {
      name: "POD_NAME",
      description: "This pod's name: the podName label on connections and registrations",
      parse: str,
    },
    clusterName: {
      name: "CLUSTER_NAME",
      description: "This cluster's name: the clusterName label on connections and registrations",
      parse: str,
    },
    forwarderNetworkServiceName: {
      name: "NSM_FORWARDER_NETWORK_SERVICE_NAME",
      description: "Network service the node's forwarders register under",
      default: FORWARDER_NETWORK_SERVICE,
      parse: nonEmpty,
    },
    dialTimeout: {
      name: "NSM_DIAL_TIMEOUT",
      description: "Timeout for dialling the next hop (forwarder, remote nsmgr, registry)",
      default: "750ms",
      parse: duration,
    },
    requestTimeout: {
      name: "NSM_REQUEST_TIMEOUT",
      description: "Longest time one Request may take through this nsmgr when the caller set no deadline",
      default: "15s",
      parse: duration,
    },
  },
  { validate: validateCommon },
);

/** cmd-nsmgr's parsed configuration. */
export type Config = ConfigValues<typeof config.vars>;
