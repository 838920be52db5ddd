/**
 * grpcmetadata: the registry `path` JSON side channel (docs/wire-compatibility.md#registry-path-metadata) and its
 * context key.
 */
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
