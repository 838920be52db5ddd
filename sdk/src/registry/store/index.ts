/** Registry stores: one interface, an in-memory and an etcd implementation, and Find's template matching. */

export { createEtcdStore, DEFAULT_ETCD_PREFIX, type EtcdStoreOptions } from "./etcd.js";
export { matchNetworkService, matchNetworkServiceEndpoint } from "./match.js";
export { createMemoryStore, type MemoryStoreOptions } from "./memory.js";
export { type ServiceCollectorOptions, startServiceCollector } from "./service-gc.js";
export {
  DEFAULT_WATCH_BUFFER,
  type RegistryEntryOf,
  type RegistryKind,
  type RegistryStore,
  type StoreEvent,
  type StoreFindOptions,
  type StorePutOptions,
  type VersionedEntry,
} from "./types.js";
