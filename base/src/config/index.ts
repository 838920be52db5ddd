/**
 * Program configuration from environment variables: typed tables with upstream names and defaults, the
 * parsers for NSM's value formats, the variables every program shares, and `runMain`, the shared `main()`.
 */

export {
  type CommonVarsOptions,
  commonVars,
  DEFAULT_OPEN_TELEMETRY_ENDPOINT,
  type ServerLimits,
  serverLimits,
  serverVars,
  type TlsFiles,
  trustedHopsVars,
  validateCommon,
} from "./common.js";
export {
  atLeastOne,
  bool,
  cidr,
  cidrList,
  duration,
  hostPort,
  type IntOptions,
  int,
  ip,
  type LogLevel,
  labels,
  list,
  logLevel,
  type NetworkServiceRequestUrl,
  networkServiceUrls,
  nonEmpty,
  oneOf,
  type Parser,
  parseNetworkServiceUrl,
  type StoreConfig,
  spiffePatterns,
  storeUrl,
  str,
  url,
  urlList,
  workloadApiAddress,
} from "./parsers.js";
export { EXIT_CONFIG, type MainIo, type RunContext, type RunMainOptions, runMain, type SignalSource } from "./run-main.js";
export {
  allOrNone,
  ConfigError,
  type ConfigOptions,
  type ConfigSchema,
  type ConfigValue,
  type ConfigValues,
  type ConfigVar,
  defineConfig,
} from "./schema.js";
