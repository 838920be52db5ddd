/**
 * Resource managers after Alcor (design §8): networks, subnets, IP and MAC addresses, ports, security groups and
 * route tables with bitmap allocation, optimistic concurrency by revision, memory (statedb) and etcd stores, and
 * the upstream vL3 `ipam.IPAM/ManagePrefixes` pool.
 */
export {
  type Cidr,
  type Ip,
  cidrContains,
  cidrCovers,
  cidrOverlaps,
  formatCidr,
  formatIp,
  formatMac,
  parseIp,
  requireCidr,
  requireIp,
  requireMac,
  requireOui,
} from "./address.js";
export { type AllocationStrategy, DENSE_LIMIT, RangeBitmap, randomBelow } from "./bitmap.js";
export { KeyedMutex, MacAllocator, SubnetAllocator } from "./allocator.js";
export {
  type RecordRef,
  type ResourceKind,
  type ResourceStore,
  type StoreListOptions,
  type StoreOp,
  type StoredRecord,
  checksRevision,
  describeRecord,
  recordKey,
} from "./store.js";
export { type MemoryResourceStore, type MemoryResourceStoreOptions, createMemoryResourceStore } from "./memory-store.js";
export {
  DEFAULT_RESOURCE_PREFIX,
  type EtcdResourceStore,
  type EtcdResourceStoreOptions,
  createEtcdResourceStore,
} from "./etcd-store.js";
export {
  DEFAULT_MAC_OUI,
  DEFAULT_PAGE_SIZE,
  MAX_BULK,
  MAX_PAGE_SIZE,
  ResourceManagers,
  type ResourceManagersOptions,
  createResourceManagers,
} from "./managers.js";
export { PrefixPool, type PrefixLease, type PrefixPoolOptions, createPrefixPool } from "./prefix-pool.js";
export { type RegisterResourceManagersOptions, type RegisteredResourceManagers, registerResourceManagers } from "./serve.js";
