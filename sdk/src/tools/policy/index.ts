/**
 * Authorization policies as TypeScript functions (upstream ships Rego): path policies for NetworkService,
 * the registry owner rule and the monitor rule, plus `enforce`. See README.md.
 */
export { type Policy, enforce } from "./policy.js";
export {
  type PathPolicyInput,
  tokensValid,
  tokensExpired,
  tokensChained,
  prevTokenSigned,
  nextTokenSigned,
  defaultServerPolicies,
  defaultClientPolicies,
} from "./path.js";
export { type RegistryPolicyInput, registryClientAllowed } from "./registry.js";
export { type MonitorPolicyInput, monitorServiceConnection } from "./monitor.js";
