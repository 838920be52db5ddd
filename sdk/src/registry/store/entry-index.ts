/**
 * The in-memory state both stores serve Find from: entries by name with secondary indexes (service name, `svc/k=v`
 * label), and the set of live watchers. The memory store is this plus expiry timers; the etcd store keeps one as a
 * watch-fed mirror of its prefix so Find by label does not range over every key in etcd.
 */
import { clone } from "@bufbuild/protobuf";
import type { RegistryEntry } from "../core/index.js";
import type { KindSpec } from "./kind.js";
import type { StoreEvent, StoreFindOptions } from "./types.js";
import { WatchQueue } from "./watch-queue.js";
import type { StatusError } from "../../tools/status/index.js";

/** A stored entry; entries are never mutated after they are indexed (internal). */
export interface Indexed<T> {
  entry: T;
  revision: string;
  keys: Set<string>;
}

interface Watch<T extends RegistryEntry> {
  template: T;
  queue: WatchQueue<StoreEvent<T>>;
}

/** Entries by name plus secondary indexes and watchers (internal). */
export class EntryIndex<T extends RegistryEntry> {
  private readonly byName = new Map<string, Indexed<T>>();
  private readonly byKey = new Map<string, Set<string>>();
  private readonly watchers = new Set<Watch<T>>();

  constructor(
    private readonly spec: KindSpec<T>,
    private readonly watchBuffer: number,
    private readonly what: string,
  ) {}

  get size(): number {
    return this.byName.size;
  }

  get(name: string): Indexed<T> | undefined {
    return this.byName.get(name);
  }

  /** Stores `entry` (owned by the index from now on) and tells matching watchers. */
  set(entry: T, revision: string, publish = true): void {
    const name = entry.name;
    const cur = this.byName.get(name);
    if (cur !== undefined) this.unlink(cur, name);
    const s: Indexed<T> = { entry, revision, keys: this.spec.indexKeys(entry) };
    this.byName.set(name, s);
    for (const key of s.keys) {
      let names = this.byKey.get(key);
      if (names === undefined) {
        names = new Set();
        this.byKey.set(key, names);
      }
      names.add(name);
    }
    if (publish) this.publish({ entry, deleted: false, revision });
  }

  /** Removes `name` and tells matching watchers (with the removed entry and the revision of the removal). */
  delete(name: string, revision: string): Indexed<T> | undefined {
    const cur = this.byName.get(name);
    if (cur === undefined) return undefined;
    this.unlink(cur, name);
    this.publish({ entry: cur.entry, deleted: true, revision });
    return cur;
  }

  /** Ends every watch with `err` (after each drains what it has buffered). */
  failWatchers(err: StatusError): void {
    for (const w of this.watchers) w.queue.fail(err);
    this.watchers.clear();
  }

  /**
   * Find over this index. The watcher is registered and the snapshot taken in one synchronous step, so every later
   * change lands in its queue and nothing earlier does: no gap and no duplicate between snapshot and live events.
   */
  async *find(template: T, opts: StoreFindOptions): AsyncGenerator<StoreEvent<T>> {
    let watch: Watch<T> | undefined;
    if (opts.watch) {
      watch = { template, queue: new WatchQueue<StoreEvent<T>>(this.watchBuffer, this.what) };
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
        const ev = await watch.queue.next(opts.signal);
        if (ev === undefined) return;
        yield { entry: clone(this.spec.schema, ev.entry), deleted: ev.deleted, revision: ev.revision };
      }
    } finally {
      if (watch !== undefined) this.watchers.delete(watch);
    }
  }

  /** The smallest candidate set the indexes offer for `template` (every entry when it names nothing indexed). */
  private *candidates(template: T): Iterable<Indexed<T>> {
    if (template.name !== "") {
      const s = this.byName.get(template.name);
      if (s !== undefined) yield s;
      return;
    }
    let best: Set<string> | undefined;
    for (const key of this.spec.requiredKeys(template)) {
      const names = this.byKey.get(key);
      if (names === undefined) return; // a required key no entry has: nothing can match
      if (best === undefined || names.size < best.size) best = names;
    }
    if (best === undefined) {
      yield* this.byName.values();
      return;
    }
    for (const name of best) {
      const s = this.byName.get(name);
      if (s !== undefined) yield s;
    }
  }

  private unlink(s: Indexed<T>, name: string): void {
    this.byName.delete(name);
    for (const key of s.keys) {
      const names = this.byKey.get(key);
      if (names === undefined) continue;
      names.delete(name);
      if (names.size === 0) this.byKey.delete(key);
    }
  }

  /** Hands a change to every matching watcher without waiting; a watcher whose buffer is full is dropped. */
  private publish(ev: StoreEvent<T>): void {
    for (const w of this.watchers) {
      if (!this.spec.match(w.template, ev.entry)) continue;
      if (!w.queue.push(ev)) this.watchers.delete(w);
    }
  }
}
