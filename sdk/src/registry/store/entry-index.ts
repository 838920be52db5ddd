/**
 * The in-memory state both stores serve Find from: a statedb table of entries (primary key: name; a multi index
 * over the service-name and `svc/k=v` label keys), and the set of live watchers. The memory store is this plus
 * expiry timers; the etcd store keeps one as a watch-fed mirror of its prefix so Find by label does not range over
 * every key in etcd.
 */
import { clone, create, fromBinary } from "@bufbuild/protobuf";
import type { GenMessage } from "@bufbuild/protobuf/codegenv2";
import { AsyncQueue } from "@nsm-ts/base/queue";
import { Code, StatusError } from "@nsm-ts/base/status";
import { createDb, type Db, type Table } from "@nsm-ts/statedb";
import type { RegistryEntry } from "../core/index.js";
import type { KindSpec } from "./kind.js";
import type { StoreEvent, StoreFindOptions } from "./types.js";

/** A stored entry; entries are never mutated after they are indexed (internal). */
export interface Indexed<T> {
  /** The entry's name (the primary key), readable without decoding a loaded entry. */
  readonly name: string;
  readonly entry: T;
  readonly revision: string;
  readonly keys: readonly string[];
}

/**
 * A loaded entry kept as the bytes it was decoded from, decoded again on first use. A decoded entry takes about 8 ×
 * its bytes in memory; dropped right after indexing, it is garbage the collector never copies, where 100,000 kept
 * ones made most of a load's garbage-collection time (every minor collection copying the entries decoded since the
 * previous one). The load decoded each value once already (undecodable ones are skipped), so the kept bytes decode.
 */
class LoadedEntry<T extends RegistryEntry> implements Indexed<T> {
  private decoded: T | undefined;

  constructor(
    private readonly schema: GenMessage<T>,
    private readonly bytes: Uint8Array,
    readonly name: string,
    readonly revision: string,
    readonly keys: readonly string[],
  ) {}

  get entry(): T {
    this.decoded ??= fromBinary(this.schema, this.bytes);
    return this.decoded;
  }
}

/** An open bulk load of an `EntryIndex` (internal). */
export interface Loader<T> {
  /** Adds `entry`, decoded from `bytes` (kept instead of the entry; neither may change afterwards). */
  add(entry: T, revision: string, bytes: Uint8Array): void;
  /** Publishes everything added (the sorting spread over a few event-loop turns). */
  finish(): Promise<void>;
  /** Drops everything added (a failed load). */
  abort(): void;
}

interface Watch<T extends RegistryEntry> {
  template: T;
  queue: AsyncQueue<StoreEvent<T>>;
}

/** Entries by name plus secondary indexes and watchers (internal). */
export class EntryIndex<T extends RegistryEntry> {
  private readonly db: Db;
  private readonly table: Table<Indexed<T>, "key">;
  private readonly watchers = new Set<Watch<T>>();

  constructor(
    private readonly spec: KindSpec<T>,
    private readonly watchBuffer: number,
    private readonly what: string,
  ) {
    // No reader resumes from old revisions here (watchers get their events pushed), so keep few tombstones.
    this.db = createDb({ graveyardSize: 16 });
    this.table = this.db.createTable<Indexed<T>, "key">({
      name: `registry-${spec.kind}`,
      primaryKey: (s) => s.name,
      indexes: { key: { kind: "multi", keys: (s) => s.keys } },
    });
  }

  get size(): number {
    return this.table.count(this.db.readTxn());
  }

  get(name: string): Indexed<T> | undefined {
    return this.table.get(this.db.readTxn(), name);
  }

  /** Stores `entry` (owned by the index from now on) and tells matching watchers. */
  set(entry: T, revision: string, publish = true): void {
    // Every write is one synchronous transaction, so two never overlap.
    const txn = this.db.writeTxn(this.table);
    this.table.insert(txn, { name: entry.name, entry, revision, keys: this.spec.indexKeys(entry) });
    txn.commit();
    if (publish) this.publish({ entry, deleted: false, revision });
  }

  /**
   * A mirror's load into the empty index: entries (owned by the index from now on) are gathered with their index
   * keys as they come (statedb's `bulkInsert`), and `finish` builds every tree at once from sorted keys (far cheaper
   * than an insert per entry) in one write transaction and publishes them, told to no watcher. Nothing else may
   * write the index until `finish` (the mirror's watch starts after its load).
   */
  startLoad(): Loader<T> {
    let bulk = this.table.bulkInsert();
    return {
      add: (entry, revision, bytes) => {
        bulk.add(new LoadedEntry(this.spec.schema, bytes, entry.name, revision, this.spec.indexKeys(entry)));
      },
      finish: async () => {
        // The sorting in steps with a turn between, so other calls are served during it, then the build and commit.
        while (!bulk.prepare()) await new Promise<void>((resolve) => setImmediate(resolve));
        const txn = this.db.writeTxn(this.table);
        try {
          this.table.insertMany(txn, bulk);
        } catch (err) {
          txn.abort();
          throw err;
        }
        txn.commit();
        bulk = this.table.bulkInsert();
      },
      abort: () => {
        bulk = this.table.bulkInsert();
      },
    };
  }

  /** Removes `name` and tells matching watchers (with the removed entry and the revision of the removal). */
  delete(name: string, revision: string): Indexed<T> | undefined {
    const txn = this.db.writeTxn(this.table);
    const cur = this.table.get(txn, name);
    if (cur === undefined) {
      txn.abort();
      return undefined;
    }
    // statedb keeps the deleted object as a tombstone: swap in a name-only stub first, so a large entry leaves
    // nothing large behind (docs/wire-compatibility.md#limits).
    this.table.insert(txn, { name, entry: this.stub(name), revision, keys: [] });
    this.table.deleteKey(txn, name);
    txn.commit();
    this.publish({ entry: cur.entry, deleted: true, revision });
    return cur;
  }

  /** An entry of this kind holding only `name`: what a tombstone keeps. */
  private stub(name: string): T {
    return create(this.spec.schema, { name } as never) as T;
  }

  /** Ends every watch with `err` (after each drains what it has buffered). */
  failWatchers(err: StatusError): void {
    for (const w of this.watchers) w.queue.end(err);
    this.watchers.clear();
  }

  /**
   * Find over this index. The watcher is registered and the snapshot taken in one synchronous step, so every later
   * change lands in its queue and nothing earlier does: no gap and no duplicate between snapshot and live events.
   */
  async *find(template: T, opts: StoreFindOptions): AsyncGenerator<StoreEvent<T>> {
    let watch: Watch<T> | undefined;
    if (opts.watch) {
      watch = { template, queue: this.watchQueue() };
      this.watchers.add(watch);
    }
    const snapshot: Indexed<T>[] = [];
    for (const s of this.candidates(template)) if (this.spec.match(template, s.entry)) snapshot.push(s);
    try {
      for (const s of snapshot) {
        if (opts.signal.aborted) return;
        yield { entry: clone(this.spec.schema, s.entry), deleted: false, revision: s.revision };
      }
      if (watch === undefined) return;
      for (;;) {
        const ev = await watch.queue.take(opts.signal);
        if (ev === undefined) return;
        yield { entry: clone(this.spec.schema, ev.entry), deleted: ev.deleted, revision: ev.revision };
      }
    } finally {
      if (watch !== undefined) this.watchers.delete(watch);
    }
  }

  /**
   * A watcher's buffer. Writers push without ever waiting; a watcher that lets it fill is failed with
   * `ResourceExhausted` after it has read what was buffered, so a slow consumer never blocks writers or other
   * watchers and never silently misses an event.
   */
  private watchQueue(): AsyncQueue<StoreEvent<T>> {
    const capacity = this.watchBuffer;
    const overflow = (): StatusError =>
      new StatusError(
        Code.ResourceExhausted,
        `${this.what}: watcher fell ${capacity} events behind and was disconnected; find again to resync`,
      );
    return new AsyncQueue<StoreEvent<T>>({ capacity, overflow });
  }

  /** The smallest candidate set the indexes offer for `template` (every entry when it names nothing indexed). */
  private candidates(template: T): Iterable<Indexed<T>> {
    const txn = this.db.readTxn();
    if (template.name !== "") {
      const s = this.table.get(txn, template.name);
      return s === undefined ? [] : [s];
    }
    let best: Indexed<T>[] | undefined;
    for (const key of this.spec.requiredKeys(template)) {
      const under = this.table.list(txn, "key", key);
      if (under.length === 0) return []; // a required key no entry has: nothing can match
      if (best === undefined || under.length < best.length) best = under;
    }
    return best ?? this.table.all(txn);
  }

  /** Hands a change to every matching watcher without waiting; a watcher whose buffer is full is dropped. */
  private publish(ev: StoreEvent<T>): void {
    for (const w of this.watchers) {
      if (!this.spec.match(w.template, ev.entry)) continue;
      if (!w.queue.push(ev)) this.watchers.delete(w);
    }
  }
}
