/** discover element (server): NSE candidates from the registry by the network service's matches. */
export {
  newServer,
  candidatesKey,
  candidatesOf,
  type Candidates,
  type DiscoverRegistries,
  type DiscoverOptions,
} from "./server.js";
export { matchEndpoints, isSubset, processLabel, isExpired } from "./match.js";
export { findUntil, collect, waitBudgetMs } from "./find.js";
