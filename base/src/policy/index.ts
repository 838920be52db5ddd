/**
 * Authorization policies as TypeScript functions (upstream ships Rego): path policies for NetworkService,
 * the registry owner rule and the monitor rule, plus `enforce`. See README.md.
 */

export { firstSegmentCaller, isMeshHopId, spiffeIdMatcher } from "./caller.js";
export { type MonitorPolicyInput, monitorServiceConnection } from "./monitor.js";
export {
  defaultClientPolicies,
  defaultServerPolicies,
  nextTokenSigned,
  type PathPolicyInput,
  prevTokenSigned,
  tokensChained,
  tokensExpired,
  tokensValid,
  tokenTimeProblem,
} from "./path.js";
export { enforce, type Policy } from "./policy.js";
export { type RegistryPolicyInput, registryClientAllowed } from "./registry.js";
