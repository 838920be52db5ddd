/**
 * Program configuration from environment variables: typed tables with upstream names and defaults, the
 * parsers for NSM's value formats, the variables every program shares, and `runMain`, the shared `main()`.
 */
export {
  allOrNone,
  ConfigError,
  defineConfig,
  type ConfigOptions,
  type ConfigSchema,
  type ConfigValue,
  type ConfigValues,
  type ConfigVar,
} from "./schema.js";
export {
  atLeastOne,
  bool,
  cidr,
  cidrList,
  duration,
  hostPort,
  int,
  ip,
  labels,
  list,
  logLevel,
  networkServiceUrls,
  nonEmpty,
  oneOf,
  parseNetworkServiceUrl,
  str,
  url,
  urlList,
  type IntOptions,
  type LogLevel,
  type NetworkServiceRequestUrl,
  type Parser,
} from "./parsers.js";
export { commonVars, DEFAULT_OPEN_TELEMETRY_ENDPOINT, validateCommon, type CommonVarsOptions, type TlsFiles } from "./common.js";
export { EXIT_CONFIG, runMain, type MainIo, type RunContext, type RunMainOptions, type SignalSource } from "./run-main.js";
