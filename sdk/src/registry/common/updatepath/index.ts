/** updatepath (registry): hop tokens in the `path` side channel and SPIFFE IDs in `path_ids`. */
export { newServer, newClient, updatePath, subjectOf } from "./updatepath.js";
