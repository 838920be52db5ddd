/**
 * Resource managers after Alcor: networks, subnets, IP and MAC addresses, ports, security groups and
 * route tables with bitmap allocation, optimistic concurrency by revision, memory (statedb) and etcd stores, and
 * the upstream vL3 `ipam.IPAM/ManagePrefixes` pool.
 */
export {
  type Cidr,
  cidrContains,
  cidrCovers,
  cidrOverlaps,
  formatCidr,
  formatIp,
  formatMac,
  type Ip,
  parseIp,
  requireCidr,
  requireIp,
  requireMac,
  requireOui,
} from "./address.js";
export { KeyedMutex, MacAllocator, SubnetAllocator } from "./allocator.js";
export { type AllocationStrategy, DENSE_LIMIT, RangeBitmap, randomBelow } from "./bitmap.js";
export {
  createEtcdResourceStore,
  DEFAULT_RESOURCE_PREFIX,
  type EtcdResourceStore,
  type EtcdResourceStoreOptions,
} from "./etcd-store.js";
export {
  createResourceManagers,
  DEFAULT_MAC_OUI,
  DEFAULT_PAGE_SIZE,
  MAX_BULK,
  MAX_PAGE_SIZE,
  ResourceManagers,
  type ResourceManagersOptions,
} from "./managers.js";
export { createMemoryResourceStore, type MemoryResourceStore, type MemoryResourceStoreOptions } from "./memory-store.js";
export { createPrefixPool, type PrefixLease, PrefixPool, type PrefixPoolOptions } from "./prefix-pool.js";
export { type RegisteredResourceManagers, type RegisterResourceManagersOptions, registerResourceManagers } from "./serve.js";
export {
  checkCreator,
  checksRevision,
  describeRecord,
  type RecordRef,
  type ResourceKind,
  type ResourceStore,
  recordKey,
  type StoredRecord,
  type StoreListOptions,
  type StoreOp,
  type StoreWatchEvent,
  type StoreWatchOptions,
  type WriteCaller,
} from "./store.js";
export { DEFAULT_WATCH_BUFFER } from "./watch.js";
