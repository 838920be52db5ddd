/**
 * The small key-value contract the traffic controller is written against: snapshot reads of a prefix, atomic
 * transactions guarded by per-key revision compares, prefix watches and exclusive named locks. Two
 * implementations: this process's memory (`createMemoryKv`) and etcd shared by replicas (`createEtcdKv`).
 */

/** One stored key. `modRevision` is the store revision of its last write (decimal). */
export interface KvEntry {
  readonly key: string;
  readonly value: string;
  readonly modRevision: string;
}

/** A compare of a transaction: the key was last written at `modRevision` ("0": it does not exist). */
export interface KvCompare {
  readonly key: string;
  readonly modRevision: string;
}

/** A transaction: every compare holds, then every put and delete happen at one revision, or nothing does. */
export interface KvTxn {
  readonly compares: readonly KvCompare[];
  readonly puts: ReadonlyArray<{ key: string; value: string }>;
  readonly deletes: readonly string[];
}

/** A change seen by a watch. */
export interface KvEvent {
  readonly type: "put" | "delete";
  readonly entry: KvEntry;
}

/** An exclusive lock across every user of the store; `compare` proves in a transaction that it is still held. */
export interface KvLock {
  readonly compare: KvCompare;
  /** Aborts when the lock is lost (its lease expired) or released. */
  readonly lost: AbortSignal;
  release(): Promise<void>;
}

/** The store. Keys are relative to the store's prefix. */
export interface Kv {
  /** Every key under `prefix`, read at one revision (returned). */
  list(prefix: string): Promise<{ entries: KvEntry[]; revision: string }>;
  get(key: string): Promise<KvEntry | undefined>;
  /** Applies `txn` atomically; `succeeded` false (nothing written) when a compare failed. */
  txn(txn: KvTxn): Promise<{ succeeded: boolean; revision: string }>;
  /** Reports every change under `prefix` after `afterRevision` until stopped; `onError` when the watch breaks. */
  watch(
    prefix: string,
    afterRevision: string,
    onEvent: (ev: KvEvent) => void,
    onError: (err: Error) => void,
  ): Promise<{ stop(): Promise<void> }>;
  /** Takes the named lock if free; undefined when someone else holds it. */
  tryLock(name: string, ttlMs: number): Promise<KvLock | undefined>;
  close(): Promise<void>;
}
