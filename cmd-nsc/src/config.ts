/**
 * cmd-nsc's environment table: upstream's names and defaults (cmd-nsc), plus the pod/node/cluster names its
 * clientinfo element puts on the connection labels (upstream reads them from the environment inside the
 * element; here the program passes them in).
 */

import { hostname } from "node:os";
import {
  atLeastOne,
  bool,
  ConfigError,
  type ConfigValues,
  commonVars,
  defineConfig,
  duration,
  int,
  labels,
  networkServiceUrls,
  nonEmpty,
  str,
  url,
  validateCommon,
} from "@nsm-ts/base/config";
import { parseServerAddress } from "@nsm-ts/sdk/dns";
import { MAX_LEASE_MS, parseServiceBackends } from "./backends.js";
import { DEFAULT_STATE_DIR } from "./state.js";

/** 127.0.0.0/8 or ::1: the forwarder serves this netns only. */
const isLoopback = (ip: string): boolean => /^127\./.test(ip) || ip === "::1";

/** Mechanisms this client can request: KERNEL (an interface in our netns) and NOOP (control plane only). */
export const SUPPORTED_MECHANISMS = ["KERNEL", "NOOP"] as const;

/** NSM_STATE_DIR, in both the client's and the CLI's table: where clients publish and `list connections` reads. */
export const stateDirVar = {
  name: "NSM_STATE_DIR",
  description:
    "Directory of the clients' state files: each client writes <NSM_NAME>.json there (its connections, CONNECTED or HEALING) on every change; `cmd-nsc list connections` reads them",
  default: DEFAULT_STATE_DIR,
  defaultLabel: "<tmpdir>/nsm-ts-nsc",
  parse: nonEmpty,
};

/** The table; `config.names()` is what manifests may set. */
export const config = defineConfig(
  {
    ...commonVars({ name: `nsc-${hostname()}`, nameLabel: "nsc-<hostname>" }),
    connectTo: {
      name: "NSM_CONNECT_TO",
      description: "The node's nsmgr",
      default: "unix:///var/lib/networkservicemesh/nsm.io.sock",
      parse: url,
    },
    networkServices: {
      name: "NSM_NETWORK_SERVICES",
      description: "Connections to request, comma separated: [mechanism://]service[@domain][/ifname][?label=value&...]",
      required: true,
      parse: atLeastOne(networkServiceUrls),
    },
    labels: {
      name: "NSM_LABELS",
      description: "Labels for every connection, key:value or key=value, comma separated (a URL's own labels win)",
      default: "",
      parse: labels,
    },
    requestTimeout: {
      name: "NSM_REQUEST_TIMEOUT",
      description: "Deadline of each Request (first request, refresh, heal)",
      default: "15s",
      parse: duration,
    },
    dialTimeout: {
      name: "NSM_DIAL_TIMEOUT",
      description: "Timeout for dialling the nsmgr",
      default: "5s",
      parse: duration,
    },
    nodeName: {
      name: "NODE_NAME",
      description: "This node's name: the nodeName connection label",
      parse: str,
    },
    podName: {
      name: "POD_NAME",
      description: "This pod's name: the podName connection label",
      parse: str,
    },
    clusterName: {
      name: "CLUSTER_NAME",
      description: "This cluster's name: the clusterName connection label",
      parse: str,
    },
    stateDir: stateDirVar,
    serviceBackends: {
      name: "NSM_SERVICE_BACKENDS",
      description:
        "Backend role, comma separated <service>:<port>[/tcp]: once connected, register this pod (its first vL3 source address, backend name NSM_NAME, source api) as a backend of each service through NSM_SERVICES_URL, probe the port with a TCP connect and write its health on change; deleted on exit. Empty = off",
      default: "",
      parse: parseServiceBackends,
    },
    servicesUrl: {
      name: "NSM_SERVICES_URL",
      description: "The services API (cmd-registry) the backend role writes to; required with NSM_SERVICE_BACKENDS",
      parse: url,
    },
    zone: {
      name: "NSM_ZONE",
      description: "This node's zone, the zone of the backends this pod registers (for closest ServiceIPs)",
      default: "",
      parse: str,
    },
    probeInterval: {
      name: "NSM_SERVICE_PROBE_INTERVAL",
      description: "Backend role: time between two probes of each port (the first probe runs as soon as the address is known)",
      default: "1s",
      parse: duration,
    },
    probeTimeout: {
      name: "NSM_SERVICE_PROBE_TIMEOUT",
      description: "Backend role: how long one probe (TCP connect) may take before it counts as failed",
      default: "1s",
      parse: duration,
    },
    probeFailures: {
      name: "NSM_SERVICE_PROBE_FAILURES",
      description:
        "Backend role: consecutive failed probes before the backend is written UNHEALTHY (one success makes it HEALTHY again); worst-case detection ≈ failures × interval + timeout",
      default: "3",
      parse: int({ min: 1, max: 100 }),
    },
    serviceLease: {
      name: "NSM_SERVICE_LEASE",
      description:
        "Backend role: lease of the backend rows, renewed with every probe; rows of a sidecar killed with its pod (no delete on exit) go when it runs out. Whole seconds, longer than interval + timeout; unset = 3 × (interval + timeout), at least 5s",
      parse: duration,
    },
    localDnsServerEnabled: {
      name: "NSM_LOCAL_DNS_SERVER_ENABLED",
      description:
        "Run the local DNS forwarder once a connection carries DNS configs (dns_context): it routes by search domain, fans out, and falls back to the original nameservers",
      default: "true",
      parse: bool,
    },
    localDnsServerAddress: {
      name: "NSM_LOCAL_DNS_SERVER_ADDRESS",
      description:
        "Where the forwarder listens, ip:53 on a loopback address of this netns (UDP and TCP); the resolver config names this IP",
      default: "127.0.0.1:53",
      parse: str,
    },
    resolvConfPath: {
      name: "NSM_RESOLV_CONF_PATH",
      description:
        "Resolver config pointed at the forwarder while it runs, and restored on exit; its nameservers are the forwarder's fallback",
      default: "/etc/resolv.conf",
      parse: nonEmpty,
    },
    dnsQueryTimeout: {
      name: "NSM_DNS_QUERY_TIMEOUT",
      description: "Time the forwarder gives one query (all its servers and the fallback) before answering SERVFAIL",
      default: "5s",
      parse: duration,
    },
  },
  {
    validate(cfg) {
      validateCommon(cfg);
      const dns = parseServerAddress(cfg.localDnsServerAddress);
      if (!dns || !isLoopback(dns.host) || dns.port !== 53) {
        throw new ConfigError(
          "NSM_LOCAL_DNS_SERVER_ADDRESS",
          `${JSON.stringify(cfg.localDnsServerAddress)} must be a loopback ip:53 (a resolver config names a nameserver by IP, always on port 53)`,
        );
      }
      if (cfg.serviceBackends.length > 0 && cfg.servicesUrl === undefined) {
        throw new ConfigError("NSM_SERVICES_URL", "is required when NSM_SERVICE_BACKENDS is set (the backends are written through it)");
      }
      const lease = cfg.serviceLease;
      if (lease !== undefined && (lease <= cfg.probeInterval + cfg.probeTimeout || lease > MAX_LEASE_MS || lease % 1000 !== 0)) {
        throw new ConfigError(
          "NSM_SERVICE_LEASE",
          `${lease}ms must be whole seconds, longer than NSM_SERVICE_PROBE_INTERVAL + NSM_SERVICE_PROBE_TIMEOUT (a live pod renews once per probe) and at most 24h`,
        );
      }
      for (const u of cfg.networkServices) {
        if (!(SUPPORTED_MECHANISMS as readonly string[]).includes(u.mechanism)) {
          throw new ConfigError(
            "NSM_NETWORK_SERVICES",
            `mechanism ${u.mechanism.toLowerCase()}:// of ${JSON.stringify(u.networkService)} is not supported; use ${SUPPORTED_MECHANISMS.map((m) => `${m.toLowerCase()}://`).join(" or ")}`,
          );
        }
      }
    },
  },
);

/** cmd-nsc's parsed configuration. */
export type Config = ConfigValues<typeof config.vars>;
