/**
 * The etcd plumbing shared by the etcd-backed stores (registry, resource managers): client ownership, key
 * prefixes and ranges, `Unavailable` on transport failures, paged reads, watches, leases, compare-and-swap
 * compares and a watch-fed prefix mirror. The etcd3 client types the stores need are exported from here too, and
 * `newEtcdClient`: etcd3 itself is loaded only when a client is made.
 */
export type { Etcd3, ICompare, IKeyValue, IOptions, IRequestOp, ITxnResponse } from "etcd3";
export { compare, keyAfter, prefixEnd } from "./keys.js";
export { EtcdMirror, type MirrorFeed } from "./mirror.js";
export { type ScanOptions, scanPrefix } from "./scan.js";
export {
  type EtcdClientOptions,
  EtcdStoreBase,
  type EtcdStoreBaseOptions,
  type EtcdWatch,
  newEtcdClient,
  type RangePage,
  type WatchHandlers,
} from "./store.js";
