/** discover element (server): NSE candidates from the registry by the network service's matches. */

export {
  allCandidatesFailed,
  askRegistry,
  callerGone,
  collect,
  failedAtMetadata,
  findUntil,
  forwardersUnreachable,
  isForwarderFailure,
  isRegistryFailure,
  REGISTRY_FAILURE_TRAILER,
  registryFailure,
  waitBudgetMs,
} from "./find.js";
export { isExpired, isSubset, matchEndpoints, processLabel } from "./match.js";
export {
  type Candidates,
  candidatesKey,
  candidatesOf,
  type DiscoverOptions,
  type DiscoverRegistries,
  newServer,
} from "./server.js";
