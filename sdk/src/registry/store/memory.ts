/**
 * The in-memory registry store (the default): entries in a statedb table (primary key: name) with a multi index by network service
 * name and by `svc/k=v` label so a Find naming a service or a label looks at its candidates only. Expiry runs on
 * the injected clock.
 */
import { clone } from "@bufbuild/protobuf";
import { type Clock, realClock, type Timer } from "@nsm-ts/base/clock";
import { Code, fail, StatusError } from "@nsm-ts/base/status";
import type { RegistryEntry } from "../core/index.js";
import { EntryIndex } from "./entry-index.js";
import { entryName, failStaleRevision, type KindSpec, kindSpec } from "./kind.js";
import {
  DEFAULT_WATCH_BUFFER,
  type RegistryEntryOf,
  type RegistryKind,
  type RegistryStore,
  type StoreEvent,
  type StoreFindOptions,
  type StorePutOptions,
  type VersionedEntry,
} from "./types.js";

/** Options of `createMemoryStore`. */
export interface MemoryStoreOptions {
  /** Time source for expiry; default the real clock. */
  clock?: Clock;
  /** Live events buffered per watcher before it is cut off with `ResourceExhausted`; default `DEFAULT_WATCH_BUFFER`. */
  watchBuffer?: number;
}

/** Creates an in-memory store of network services (`"ns"`) or endpoints (`"nse"`). */
export function createMemoryStore<K extends RegistryKind>(kind: K, opts: MemoryStoreOptions = {}): RegistryStore<RegistryEntryOf[K]> {
  return new MemoryStore(kindSpec(kind), opts.clock ?? realClock, opts.watchBuffer ?? DEFAULT_WATCH_BUFFER);
}

class MemoryStore<T extends RegistryEntry> implements RegistryStore<T> {
  readonly kind: RegistryKind;
  private readonly what: string;
  private readonly index: EntryIndex<T>;
  private readonly timers = new Map<string, Timer>();
  private revision = 0;
  private closed = false;

  constructor(
    private readonly spec: KindSpec<T>,
    private readonly clock: Clock,
    watchBuffer: number,
  ) {
    this.kind = spec.kind;
    this.what = `registry store (memory ${spec.kind})`;
    if (!(watchBuffer >= 1)) fail(Code.InvalidArgument, `${this.what}: watchBuffer must be at least 1`);
    this.index = new EntryIndex(spec, watchBuffer, this.what);
  }

  async get(name: string): Promise<T | undefined> {
    return (await this.getVersioned(name))?.entry;
  }

  async getVersioned(name: string): Promise<VersionedEntry<T> | undefined> {
    this.checkOpen();
    const s = this.index.get(name);
    return s === undefined ? undefined : { entry: clone(this.spec.schema, s.entry), revision: s.revision };
  }

  async put(entry: T, opts: StorePutOptions = {}): Promise<{ revision: string }> {
    this.checkOpen();
    const name = entryName(this.what, entry);
    if (opts.expectRevision !== undefined) {
      const have = this.index.get(name)?.revision ?? "0";
      if (have !== opts.expectRevision) failStaleRevision(this.what, name, have, opts.expectRevision);
    }
    this.timers.get(name)?.stop();
    this.timers.delete(name);
    const revision = String(++this.revision);
    this.index.set(clone(this.spec.schema, entry), revision);
    if (opts.expiresAtMs !== undefined) {
      const timer = this.clock.setTimer(opts.expiresAtMs - this.clock.now(), () => {
        this.timers.delete(name);
        // A later put replaced the entry and stopped this timer; a stale firing must still not delete the new one.
        if (!this.closed && this.index.get(name)?.revision === revision) this.index.delete(name, String(++this.revision));
      });
      this.timers.set(name, timer);
    }
    return { revision };
  }

  async delete(name: string): Promise<T | undefined> {
    this.checkOpen();
    this.timers.get(name)?.stop();
    this.timers.delete(name);
    if (this.index.get(name) === undefined) return undefined;
    const removed = this.index.delete(name, String(++this.revision));
    return removed === undefined ? undefined : clone(this.spec.schema, removed.entry);
  }

  find(template: T, opts: StoreFindOptions): AsyncIterable<StoreEvent<T>> {
    return this.findGen(clone(this.spec.schema, template), opts);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const t of this.timers.values()) t.stop();
    this.timers.clear();
    this.index.failWatchers(new StatusError(Code.Unavailable, `${this.what}: store closed`));
  }

  private async *findGen(template: T, opts: StoreFindOptions): AsyncGenerator<StoreEvent<T>> {
    this.checkOpen();
    yield* this.index.find(template, opts);
  }

  private checkOpen(): void {
    if (this.closed) fail(Code.Unavailable, `${this.what}: store closed`);
  }
}
