/**
 * cmd-nse-vl3's environment table: upstream's names and defaults (cmd-nse-vl3-vpp) where upstream has the
 * variable, plus NSM_VL3_PREFIX (the whole vL3 range routed through the endpoint, which upstream derives as the
 * prefix widened to /16) and NSM_LISTEN_ON as cmd-endpoint has it; the member-name server's NSM_DNS_ENABLED
 * and NSM_DNS_PORT are ours (upstream always serves on port 53), NSM_DNS_TEMPLATES is upstream's.
 */

/** Name templates: a comma-separated list, each compiled now so a typo stops the start naming the variable. */
function templates(raw: string): string[] {
  const items = atLeastOne(list)(raw);
  for (const t of items) dnscontext.vl3dns.compileNameTemplate(t);
  return items;
}

import { hostname } from "node:os";
import {
  atLeastOne,
  bool,
  type ConfigValues,
  cidr,
  commonVars,
  defineConfig,
  duration,
  int,
  labels,
  list,
  serverVars,
  url,
  validateCommon,
} from "@nsm-ts/base/config";
import { dnscontext } from "@nsm-ts/sdk/networkservice";

/** The table; `config.names()` is what manifests may set. */
export const config = defineConfig(
  {
    ...commonVars({ name: `vl3-${hostname()}`, nameLabel: "vl3-<hostname>" }),
    ...serverVars(),
    listenOn: {
      name: "NSM_LISTEN_ON",
      description: "URL to serve on; unset = a unix socket in a new temp directory, registered for the node's nsmgr",
      parse: url,
    },
    connectTo: {
      name: "NSM_CONNECT_TO",
      description: "The node's nsmgr: where to register, watch the other vL3 endpoints and connect to them",
      default: "unix:///var/lib/networkservicemesh/nsm.io.sock",
      parse: url,
    },
    serviceNames: {
      name: "NSM_SERVICE_NAMES",
      description: "The vL3 network service this endpoint provides (the first is the one its peers are found by), comma separated",
      default: "vL3",
      parse: atLeastOne(list),
    },
    labels: {
      name: "NSM_LABELS",
      description: "Labels of the registration for every service, key:value,key:value",
      default: "",
      parse: labels,
    },
    requestLabels: {
      name: "NSM_REQUEST_LABELS",
      description: "Labels of this endpoint's connections to its peer vL3 endpoints, key:value,key:value",
      default: "",
      parse: labels,
    },
    prefixServerUrls: {
      name: "NSM_PREFIX_SERVER_URL",
      description:
        "The prefix servers (ipam.IPAM/ManagePrefixes; cmd-registry with NSM_IPAM_PREFIX_POOL) this endpoint takes its prefix from, comma separated: the first is used, the next ones in order when it fails",
      default: "tcp://registry.nsm-system:5002",
      parse: atLeastOne((raw) => list(raw).map((u) => url(u))),
    },
    vl3Prefix: {
      name: "NSM_VL3_PREFIX",
      description:
        "The whole vL3 range routed to clients through this endpoint (the prefix pool); unset = the own prefix widened to /16 (IPv4) or /64 (IPv6)",
      parse: cidr,
    },
    registerService: {
      name: "NSM_REGISTER_SERVICE",
      description: "Also register the network services (not only the endpoint) at start",
      default: "true",
      parse: bool,
    },
    unregisterItself: {
      name: "NSM_UNREGISTER_ITSELF",
      description: "Unregister the endpoint when it stops (false: the registration expires on its own)",
      default: "true",
      parse: bool,
    },
    requestTimeout: {
      name: "NSM_REQUEST_TIMEOUT",
      description: "Timeout of each Request to a peer vL3 endpoint (Go duration)",
      default: "15s",
      parse: duration,
    },
    dnsEnabled: {
      name: "NSM_DNS_ENABLED",
      description: "Serve the members' names (NSM_DNS_TEMPLATES) on the endpoint's own vL3 address and give clients that server",
      default: "true",
      parse: bool,
    },
    dnsTemplates: {
      name: "NSM_DNS_TEMPLATES",
      description:
        "Names of each client, comma separated; placeholders {{name}}, {{networkService}}, {{labels.KEY}} (or upstream's spelling)",
      default: dnscontext.vl3dns.DEFAULT_NAME_TEMPLATE,
      parse: templates,
    },
    dnsPort: {
      name: "NSM_DNS_PORT",
      description: "Port of the member-name server; the same on every vL3 endpoint of the network (they ask each other on it)",
      default: "53",
      parse: int({ min: 1, max: 65535 }),
    },
  },
  { validate: validateCommon },
);

/** cmd-nse-vl3's parsed configuration. */
export type Config = ConfigValues<typeof config.vars>;
