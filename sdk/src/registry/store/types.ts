/**
 * The registry store contract: one interface behind which the in-memory and the etcd store keep network services
 * and endpoints, generic over the entry kind so the registry server is written once.
 */
import type { NetworkService, NetworkServiceEndpoint } from "@nsm-ts/api/registry";
import type { RegistryEntry } from "../core/index.js";

/** The two kinds of registry entry a store can hold: network services (`ns`) and endpoints (`nse`). */
export type RegistryKind = "ns" | "nse";

/** Maps a store kind to the message it stores. */
export interface RegistryEntryOf {
  ns: NetworkService;
  nse: NetworkServiceEndpoint;
}

/**
 * Default per-watcher buffer of live events. Upstream's memory registry uses 10; we default higher so a burst of
 * registrations (a node restarting its endpoints) does not cut off healthy watchers, while a stuck watcher still
 * costs at most this many entries of memory before its stream ends with `ResourceExhausted`.
 */
export const DEFAULT_WATCH_BUFFER = 256;

/** Options of `RegistryStore.put`. */
export interface StorePutOptions {
  /**
   * Compare-and-swap: the put succeeds only if the entry's current revision equals this (`"0"` = the name must be
   * absent); otherwise it fails with `Aborted`. Undefined writes unconditionally.
   */
  expectRevision?: string;
  /** Absolute time (ms since the epoch) at which the store deletes the entry and reports the deletion to watchers. */
  expiresAtMs?: number;
}

/** Options of `RegistryStore.find`. */
export interface StoreFindOptions {
  /** False: yield the current matches and end. True: then keep yielding changes until `signal` aborts. */
  watch: boolean;
  /** Ends the iteration (normally, without an error) when aborted. */
  signal: AbortSignal;
}

/** One Find result: a current match (snapshot) or a later change; `deleted` marks an unregister or an expiry. */
export interface StoreEvent<T extends RegistryEntry> {
  entry: T;
  deleted: boolean;
  /** Store revision of the entry (snapshot), or of the change that produced the event. */
  revision: string;
}

/** An entry together with the revision to pass as `expectRevision` for a compare-and-swap update. */
export interface VersionedEntry<T extends RegistryEntry> {
  entry: T;
  revision: string;
}

/**
 * Where a registry keeps its entries, keyed by name. Entries handed in are copied and entries handed out are
 * copies, so callers may mutate what they get. A watcher that falls more than its buffer behind gets its
 * iteration ended with `StatusError(Code.ResourceExhausted)`; events are never silently dropped.
 */
export interface RegistryStore<T extends RegistryEntry> {
  /** The kind of entry this store holds. */
  readonly kind: RegistryKind;
  /** The entry stored under `name`, if any. */
  get(name: string): Promise<T | undefined>;
  /** The entry under `name` with its current revision, for a later compare-and-swap `put`. */
  getVersioned(name: string): Promise<VersionedEntry<T> | undefined>;
  /** Creates or replaces the entry under `entry.name`; rejects with `Aborted` when `expectRevision` does not hold. */
  put(entry: T, opts?: StorePutOptions): Promise<{ revision: string }>;
  /** Removes the entry and reports it to watchers with `deleted: true`; resolves to the removed entry. */
  delete(name: string): Promise<T | undefined>;
  /**
   * Entries matching `template` (docs/wire-compatibility.md#find-and-watch), then with `watch` every later matching
   * change, in order.
   */
  find(template: T, opts: StoreFindOptions): AsyncIterable<StoreEvent<T>>;
  /** Stops expiry timers and ends open watches with `Unavailable`; later calls fail with `Unavailable`. */
  close(): Promise<void>;
}
