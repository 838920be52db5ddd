/**
 * excludedprefixes elements: the server adds prefixes from a watched YAML file to requests; the client keeps
 * its connections' addresses from overlapping.
 */

export { type ExcludedPrefixesClientOptions, newClient } from "./client.js";
export {
  DEFAULT_EXCLUDED_PREFIXES_FILE,
  type ExcludedPrefixesServer,
  type ExcludedPrefixesServerOptions,
  newServer,
  parseExcludedPrefixes,
} from "./server.js";
