/** grpcmetadata: the registry `path` JSON side channel (contract §7.2) and its context key. */
export {
  assignPath,
  emptyPath,
  formatPath,
  PATH_METADATA_KEY,
  parsePath,
  pathKey,
  pathOf,
  type RegistryPath,
  type RegistryPathSegment,
} from "./path.js";
