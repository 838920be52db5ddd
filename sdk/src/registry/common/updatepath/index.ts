/** updatepath (registry): hop tokens in the `path` side channel and SPIFFE IDs in `path_ids`. */
export { newClient, newServer, subjectOf, updatePath } from "./updatepath.js";
