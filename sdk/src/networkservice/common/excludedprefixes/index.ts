/**
 * excludedprefixes elements: the server adds prefixes from a watched YAML file to requests; the client keeps
 * its connections' addresses from overlapping.
 */
export {
  newServer,
  parseExcludedPrefixes,
  DEFAULT_EXCLUDED_PREFIXES_FILE,
  type ExcludedPrefixesServer,
  type ExcludedPrefixesServerOptions,
} from "./server.js";
export { newClient, type ExcludedPrefixesClientOptions } from "./client.js";
