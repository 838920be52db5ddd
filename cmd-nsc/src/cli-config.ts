/**
 * The environment table of cmd-nsc's operator CLI (`cmd-nsc list|watch …`): identity and the default registry
 * and nsmgr addresses. Unlike client mode it needs no NSM_NETWORK_SERVICES; flags override the addresses.
 */
import { hostname } from "node:os";
import { type ConfigValues, commonVars, defineConfig, duration, url, validateCommon } from "@nsm-ts/base/config";
import { stateDirVar } from "./config.js";

/** The CLI table. */
export const cliConfig = defineConfig(
  {
    ...commonVars({ name: `nsc-cli-${hostname()}`, nameLabel: "nsc-cli-<hostname>" }),
    registryUrl: {
      name: "NSM_REGISTRY_URL",
      description: "Registry to list and watch (overridden by --registry)",
      default: "tcp://127.0.0.1:5002",
      parse: url,
    },
    connectTo: {
      name: "NSM_CONNECT_TO",
      description: "nsmgr whose connections `watch connections` shows (overridden by --nsmgr)",
      default: "unix:///var/lib/networkservicemesh/nsm.io.sock",
      parse: url,
    },
    requestTimeout: {
      name: "NSM_REQUEST_TIMEOUT",
      description: "Deadline of a `list` call",
      default: "15s",
      parse: duration,
    },
    stateDir: { ...stateDirVar, description: "Directory whose client state files `list connections` reads (overridden by --state-dir)" },
  },
  { validate: validateCommon },
);

/** The CLI's parsed configuration. */
export type CliConfig = ConfigValues<typeof cliConfig.vars>;
