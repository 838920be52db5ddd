/** querycache (registry): repeated Finds answered from memory, kept current by a registry watch. */
export { newClient, type QueryCache, type QueryCacheOptions } from "./querycache.js";
