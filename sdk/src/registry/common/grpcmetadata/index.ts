/** grpcmetadata: the registry `path` JSON side channel (contract §7.2) and its context key. */
export {
  PATH_METADATA_KEY,
  type RegistryPath,
  type RegistryPathSegment,
  pathKey,
  pathOf,
  emptyPath,
  formatPath,
  parsePath,
  assignPath,
} from "./path.js";
