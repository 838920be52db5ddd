/**
 * cmd-forwarder's environment table: upstream's names and defaults (cmd-forwarder-vpp/-kernel), plus the
 * choice of data-plane backend (NOOP for control-plane-only meshes, KERNEL for veth/VXLAN through sdk-linux).
 */
import { hostname } from "node:os";
import { FORWARDER_NETWORK_SERVICE } from "@nsm-ts/api/constants";
import {
  ConfigError,
  type ConfigValues,
  commonVars,
  defineConfig,
  duration,
  int,
  ip,
  labels,
  nonEmpty,
  oneOf,
  serverVars,
  str,
  trustedHopsVars,
  url,
  validateCommon,
} from "@nsm-ts/base/config";
import { IP_MODES } from "@nsm-ts/sdk-linux";

/** The data-plane backends a forwarder can drive. */
export const FORWARDER_MECHANISMS = ["NOOP", "KERNEL"] as const;

/** The table; `config.names()` is what manifests may set. */
export const config = defineConfig(
  {
    ...commonVars({ name: `forwarder-${hostname()}`, nameLabel: "forwarder-<hostname>" }),
    ...serverVars(),
    ...trustedHopsVars(),
    listenOn: {
      name: "NSM_LISTEN_ON",
      description: "URL to serve on; unset = a unix socket in a new temp directory, registered for the node's nsmgr",
      parse: url,
    },
    connectTo: {
      name: "NSM_CONNECT_TO",
      description: "The node's nsmgr: where the forwarder registers and sends requests on",
      default: "unix:///var/lib/networkservicemesh/nsm.io.sock",
      parse: url,
    },
    networkServiceName: {
      name: "NSM_NSNAME",
      description: "Network service to register under; must match the nsmgr's NSM_FORWARDER_NETWORK_SERVICE_NAME",
      default: FORWARDER_NETWORK_SERVICE,
      parse: nonEmpty,
    },
    labels: {
      name: "NSM_LABELS",
      description: "Labels of the registration, key:value,key:value (nsmgrs pick forwarders labelled p2p:true)",
      default: "p2p:true",
      parse: labels,
    },
    forwarderMechanism: {
      name: "NSM_FORWARDER_MECHANISM",
      description: "Data-plane backend: NOOP (control plane only) or KERNEL (veth and VXLAN; needs NET_ADMIN/SYS_ADMIN)",
      default: "NOOP",
      parse: oneOf(FORWARDER_MECHANISMS),
    },
    ipMode: {
      name: "NSM_KERNEL_IP_MODE",
      description:
        "KERNEL: how changes reach the kernel: persistent (one long-lived `ip -batch` per namespace), batch (an `ip -batch` process per change set) or per-command",
      default: "persistent",
      parse: oneOf(IP_MODES),
    },
    tunnelIp: {
      name: "NSM_TUNNEL_IP",
      description: "This node's IP for VXLAN tunnels to other nodes (KERNEL backend, remote connections)",
      parse: ip,
    },
    vxlanPort: {
      name: "NSM_VXLAN_PORT",
      description: "UDP port of VXLAN tunnels",
      default: "4789",
      parse: int({ min: 1, max: 65535 }),
    },
    leftoverAdoptPeriod: {
      name: "NSM_LEFTOVER_ADOPT_PERIOD",
      description:
        "KERNEL: how long links left by a previous run wait for their connections to adopt them before the rest are removed; 0 = at start",
      default: "1m",
      parse: duration,
    },
    dialTimeout: {
      name: "NSM_DIAL_TIMEOUT",
      description: "Timeout for dialling the next hop (endpoint or remote nsmgr)",
      default: "750ms",
      parse: duration,
    },
    servicesUrl: {
      name: "NSM_SERVICES_URL",
      description:
        "KERNEL: the services API (cmd-registry) whose resolved services this forwarder puts into its clients' namespaces as ServiceIP rules (nftables); unset = no ServiceIPs",
      parse: url,
    },
    resourcesUrl: {
      name: "NSM_RESOURCES_URL",
      description:
        "KERNEL: the resource managers (cmd-registry) whose ports' security groups, route tables and policy routes this forwarder enforces on its clients' interfaces (nftables, routes, ip rules); unset = not enforced (policy routes neither)",
      parse: url,
    },
    nodeName: {
      name: "NODE_NAME",
      description: "This node's name: which backends are local for closest ServiceIPs and local redirects",
      default: hostname(),
      defaultLabel: "<hostname>",
      parse: nonEmpty,
    },
    zone: {
      name: "NSM_ZONE",
      description: "This node's zone, for closest ServiceIPs (same node, then same zone, then any)",
      default: "",
      parse: str,
    },
  },
  {
    validate: (v) => {
      validateCommon(v);
      if (v.servicesUrl !== undefined && v.forwarderMechanism !== "KERNEL")
        throw new ConfigError(
          "NSM_SERVICES_URL",
          "needs NSM_FORWARDER_MECHANISM=KERNEL (ServiceIP rules live in the clients' kernel namespaces)",
        );
      if (v.resourcesUrl !== undefined && v.forwarderMechanism !== "KERNEL")
        throw new ConfigError(
          "NSM_RESOURCES_URL",
          "needs NSM_FORWARDER_MECHANISM=KERNEL (the rules live in the clients' kernel namespaces)",
        );
    },
  },
);

/** cmd-forwarder's parsed configuration. */
export type Config = ConfigValues<typeof config.vars>;
