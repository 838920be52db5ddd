/**
 * The in-memory registry store (the default): entries in a Map by name, with secondary indexes by network service
 * name and by `svc/k=v` label so a Find naming a service or a label looks at its candidates only. Expiry runs on
 * the injected clock.
 */
import { clone } from "@bufbuild/protobuf";
import type { RegistryEntry } from "../core/index.js";
import { realClock, type Clock, type Timer } from "../../tools/clock/index.js";
import { Code, StatusError, fail } from "../../tools/status/index.js";
import { kindSpec, type KindSpec } from "./kind.js";
import {
  DEFAULT_WATCH_BUFFER,
  type FindOptions,
  type PutOptions,
  type RegistryEntryOf,
  type RegistryKind,
  type RegistryStore,
  type StoreEvent,
  type VersionedEntry,
} from "./types.js";
import { WatchQueue } from "./watch-queue.js";

/** Options of `createMemoryStore`. */
export interface MemoryStoreOptions {
  /** Time source for expiry; default the real clock. */
  clock?: Clock;
  /** Live events buffered per watcher before it is cut off with `ResourceExhausted`; default `DEFAULT_WATCH_BUFFER`. */
  watchBuffer?: number;
}

interface Stored<T> {
  entry: T;
  revision: number;
  keys: Set<string>;
  timer: Timer | undefined;
}

interface Live<T> {
  entry: T;
  deleted: boolean;
  revision: number;
}

interface MemWatcher<T> {
  template: T;
  queue: WatchQueue<Live<T>>;
}

/** Creates an in-memory store of network services (`"ns"`) or endpoints (`"nse"`). */
export function createMemoryStore<K extends RegistryKind>(
  kind: K,
  opts: MemoryStoreOptions = {},
): RegistryStore<RegistryEntryOf[K]> {
  return new MemoryStore(kindSpec(kind), opts.clock ?? realClock, opts.watchBuffer ?? DEFAULT_WATCH_BUFFER);
}

class MemoryStore<T extends RegistryEntry> implements RegistryStore<T> {
  readonly kind: RegistryKind;
  private readonly what: string;
  private readonly byName = new Map<string, Stored<T>>();
  private readonly byKey = new Map<string, Set<string>>();
  private readonly watchers = new Set<MemWatcher<T>>();
  private revision = 0;
  private closed = false;

  constructor(
    private readonly spec: KindSpec<T>,
    private readonly clock: Clock,
    private readonly watchBuffer: number,
  ) {
    this.kind = spec.kind;
    this.what = `registry store (memory ${spec.kind})`;
    if (!(watchBuffer >= 1)) fail(Code.InvalidArgument, `${this.what}: watchBuffer must be at least 1`);
  }

  async get(name: string): Promise<T | undefined> {
    return (await this.getVersioned(name))?.entry;
  }

  async getVersioned(name: string): Promise<VersionedEntry<T> | undefined> {
    this.checkOpen();
    const s = this.byName.get(name);
    return s === undefined ? undefined : { entry: clone(this.spec.schema, s.entry), revision: String(s.revision) };
  }

  async put(entry: T, opts: PutOptions = {}): Promise<{ revision: string }> {
    this.checkOpen();
    const name = entry.name;
    if (name === "") fail(Code.InvalidArgument, `${this.what}: entry.name is empty`);
    const cur = this.byName.get(name);
    if (opts.expectRevision !== undefined) {
      const have = cur === undefined ? "0" : String(cur.revision);
      if (have !== opts.expectRevision) {
        fail(Code.Aborted, `${this.what}: ${name} is at revision ${have}, not the expected ${opts.expectRevision}`);
      }
    }
    if (cur !== undefined) this.unlink(cur, name);
    const revision = ++this.revision;
    const stored: Stored<T> = {
      entry: clone(this.spec.schema, entry),
      revision,
      keys: this.spec.indexKeys(entry),
      timer: undefined,
    };
    this.link(stored, name);
    if (opts.expiresAtMs !== undefined) {
      stored.timer = this.clock.setTimer(opts.expiresAtMs - this.clock.now(), () => this.expire(name, revision));
    }
    this.publish({ entry: stored.entry, deleted: false, revision });
    return { revision: String(revision) };
  }

  async delete(name: string): Promise<T | undefined> {
    this.checkOpen();
    const cur = this.byName.get(name);
    if (cur === undefined) return undefined;
    this.remove(cur, name);
    return clone(this.spec.schema, cur.entry);
  }

  find(template: T, opts: FindOptions): AsyncIterable<StoreEvent<T>> {
    return this.findGen(clone(this.spec.schema, template), opts);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const s of this.byName.values()) s.timer?.stop();
    const err = new StatusError(Code.Unavailable, `${this.what}: store closed`);
    for (const w of this.watchers) w.queue.fail(err);
    this.watchers.clear();
  }

  private async *findGen(template: T, opts: FindOptions): AsyncGenerator<StoreEvent<T>> {
    this.checkOpen();
    // Register before taking the snapshot, in the same synchronous step: every later change lands in the queue
    // and nothing before it does, so there is no gap and no duplicate between snapshot and live events.
    let watcher: MemWatcher<T> | undefined;
    if (opts.watch) {
      watcher = { template, queue: new WatchQueue<Live<T>>(this.watchBuffer, this.what) };
      this.watchers.add(watcher);
    }
    const snapshot: Stored<T>[] = [];
    for (const s of this.candidates(template)) if (this.spec.match(template, s.entry)) snapshot.push(s);
    try {
      for (const s of snapshot) {
        if (opts.signal.aborted) return;
        yield { entry: clone(this.spec.schema, s.entry), deleted: false, revision: String(s.revision) };
      }
      if (watcher === undefined) return;
      for (;;) {
        const ev = await watcher.queue.next(opts.signal);
        if (ev === undefined) return;
        yield { entry: clone(this.spec.schema, ev.entry), deleted: ev.deleted, revision: String(ev.revision) };
      }
    } finally {
      if (watcher !== undefined) this.watchers.delete(watcher);
    }
  }

  /** The smallest candidate set the indexes offer for `template` (all entries when it names nothing indexed). */
  private *candidates(template: T): Iterable<Stored<T>> {
    if (template.name !== "") {
      const s = this.byName.get(template.name);
      if (s !== undefined) yield s;
      return;
    }
    let best: Set<string> | undefined;
    for (const key of this.spec.requiredKeys(template)) {
      const names = this.byKey.get(key);
      if (names === undefined) return; // some required key has no entry at all: nothing can match
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

  private expire(name: string, revision: number): void {
    const cur = this.byName.get(name);
    // A later put replaced the entry (and stopped this timer); a stale firing must not delete the new one.
    if (cur === undefined || cur.revision !== revision || this.closed) return;
    cur.timer = undefined;
    this.remove(cur, name);
  }

  private remove(cur: Stored<T>, name: string): void {
    this.unlink(cur, name);
    this.publish({ entry: cur.entry, deleted: true, revision: ++this.revision });
  }

  private link(s: Stored<T>, name: string): void {
    this.byName.set(name, s);
    for (const key of s.keys) {
      let names = this.byKey.get(key);
      if (names === undefined) {
        names = new Set();
        this.byKey.set(key, names);
      }
      names.add(name);
    }
  }

  private unlink(s: Stored<T>, name: string): void {
    s.timer?.stop();
    s.timer = undefined;
    this.byName.delete(name);
    for (const key of s.keys) {
      const names = this.byKey.get(key);
      if (names === undefined) continue;
      names.delete(name);
      if (names.size === 0) this.byKey.delete(key);
    }
  }

  /** Hands a change to every matching watcher without waiting; a watcher whose buffer is full is dropped. */
  private publish(ev: Live<T>): void {
    for (const w of this.watchers) {
      if (!this.spec.match(w.template, ev.entry)) continue;
      if (!w.queue.push(ev)) this.watchers.delete(w);
    }
  }

  private checkOpen(): void {
    if (this.closed) fail(Code.Unavailable, `${this.what}: store closed`);
  }
}
