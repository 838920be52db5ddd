/**
 * Change streams, tombstones and watches: the changes after a revision (live objects by revision merged
 * with the graveyard of deletions), the delete trackers that keep tombstones for readers that lag, the
 * watch channels a commit fires, and initializers.
 */
import { Code, StatusError } from "@nsm-ts/base/status";
import { treeGet, treeValues, treeWalk } from "./btree.js";
import { type Change, TableIndexes } from "./schema.js";
import { type ReadTxn, type Root, WriteTxn } from "./txn.js";

/** A registered reader of a table's changes: tombstones it has not passed are kept (see `graveyardMax`). */
export interface DeleteTracker {
  /** Marks every change up to `revision` as read, releasing older tombstones. */
  advance(revision: number): void;
  /** Unregisters; call it when the reader stops. */
  close(): void;
}

/** Thrown by a change iterator that resumed from, or fell behind to, a revision whose deletions are gone. */
export class ResyncRequiredError extends StatusError {
  constructor(table: string, from: number, dropped: number) {
    super(
      Code.OutOfRange,
      `statedb: table "${table}": changes from revision ${from} are gone (tombstones up to ${dropped} dropped); resync from revision 0`,
    );
  }
}

/** A read result with a watch that resolves once when what it covers changes. */
export type Watched<R> = R & { readonly watch: Promise<void> };

/** A one-shot signal: a promise and the function that resolves it. */
export class Channel {
  readonly promise: Promise<void>;
  resolve!: () => void;
  constructor() {
    this.promise = new Promise<void>((r) => {
      this.resolve = r;
    });
  }
}

/** The watch of something that already changed. */
export const fired: Promise<void> = Promise.resolve();

function fireAll(m: Map<string, Channel>): void {
  for (const c of m.values()) c.resolve();
  m.clear();
}

/** The watch of `key`, sharing the pending channel if there is one. */
export function channel(m: Map<string, Channel>, key: string): Promise<void> {
  let c = m.get(key);
  if (!c) {
    c = new Channel();
    m.set(key, c);
  }
  return c.promise;
}

function fire(m: Map<string, Channel>, key: string): void {
  const c = m.get(key);
  if (!c) return;
  m.delete(key);
  c.resolve();
}

/** Resolves true when `p` settles, false when `signal` aborts first; removes its listener either way. */
function waitOrAbort(p: Promise<void>, signal: AbortSignal | undefined): Promise<boolean> {
  if (!signal) return p.then(() => true);
  if (signal.aborted) return Promise.resolve(false);
  return new Promise<boolean>((resolve) => {
    const onAbort = (): void => resolve(false);
    signal.addEventListener("abort", onAbort, { once: true });
    void p.then(() => {
      signal.removeEventListener("abort", onAbort);
      resolve(true);
    });
  });
}

/** @internal The change layer of `Table`: change streams, delete trackers, watch channels and initializers. */
export abstract class TableChanges<T, I extends string> extends TableIndexes<T, I> {
  private tableChannel: Channel | undefined;
  protected readonly keyChannels = new Map<string, Channel>();
  protected readonly prefixChannels = new Map<string, Channel>();
  protected readonly indexChannels = new Map<string, Channel>();
  private readonly initPending = new Set<string>();
  private initSeq: number | undefined;
  private initChannel: Channel | undefined;
  private initCounter = 0;
  private readonly trackers = new Set<{ pos: number }>();

  /** A watch that resolves once at the next commit that changes this table (at once if one already did). */
  watch(txn: ReadTxn): Promise<void> {
    if (this.committed() !== txn.rootOf(this)) return fired;
    this.tableChannel ??= new Channel();
    return this.tableChannel.promise;
  }

  /**
   * Changes after `fromRevision` in revision order, deletions included, until `signal` aborts. From 0 it
   * starts with every current object. Updates to one object are coalesced (you see its latest state). If
   * tombstones after `fromRevision` were already dropped it throws `ResyncRequiredError`: restart from 0.
   */
  async *changes(fromRevision = 0, signal?: AbortSignal): AsyncGenerator<Change<T>, void, undefined> {
    let pos = fromRevision;
    const tracker = this.trackDeletes(pos);
    try {
      while (!signal?.aborted) {
        const txn = this.db.readTxn();
        const snap = txn.rootOf<T>(this);
        for (const c of this.changesIn(snap, pos)) {
          if (signal?.aborted) return;
          yield c;
          tracker.advance(c.revision);
        }
        if (snap.revision > pos) {
          pos = snap.revision;
          tracker.advance(pos);
          continue;
        }
        if (!(await waitOrAbort(this.watch(txn), signal))) return;
      }
    } finally {
      tracker.close();
    }
  }

  /**
   * Registers a reader that starts after `fromRevision`: tombstones it has not passed (`advance`) are kept
   * beyond `graveyardSize`, up to `graveyardMax`. `changes()` registers one itself; loops built on
   * `changeBatch` register their own and `close()` it when they stop.
   */
  trackDeletes(fromRevision: number): DeleteTracker {
    const t = { pos: fromRevision };
    this.trackers.add(t);
    return {
      advance: (revision) => {
        t.pos = Math.max(t.pos, revision);
      },
      close: () => void this.trackers.delete(t),
    };
  }

  /** @internal */
  trackedFloor(): number {
    let floor = Infinity;
    for (const t of this.trackers) floor = Math.min(floor, t.pos);
    return floor;
  }

  /**
   * The changes after `afterRevision` in a snapshot as one batch (see `changes`), the revision to pass
   * next time, and a watch for the next commit: the building block for loops that also wait on timers.
   */
  changeBatch(txn: ReadTxn, afterRevision: number): Watched<{ readonly changes: Array<Change<T>>; readonly revision: number }> {
    const snap = txn.rootOf<T>(this);
    const changes = [...this.changesIn(snap, afterRevision)];
    return { changes, revision: Math.max(afterRevision, snap.revision), watch: this.watch(txn) };
  }

  /** Changes after `after` in revision order (every live object when `after` is 0); lazy over a snapshot. */
  private *changesIn(snap: Root<T>, after: number): Generator<Change<T>, void, undefined> {
    if (after === 0) {
      yield* treeValues(snap.byRevision);
      return;
    }
    if (snap.gcRevision > after) throw new ResyncRequiredError(this.name, after, snap.gcRevision);
    if (snap.revision <= after) return;
    const live = treeValues(snap.byRevision, after + 1);
    const dead = treeValues(snap.graveyard, after + 1);
    let a = live.next();
    let b = dead.next();
    while (!a.done || !b.done) {
      if (b.done || (!a.done && a.value.revision < b.value.revision)) {
        yield a.value as Change<T>;
        a = live.next();
      } else {
        yield b.value;
        b = dead.next();
      }
    }
  }

  // ---- initializers ----

  /**
   * Marks the table as not yet synced from a source; call the returned `done()` once it is. The table is
   * initialized when every registered initializer is done (a table without any is initialized).
   */
  registerInitializer(name: string): () => void {
    const token = `${name}#${this.initCounter++}`;
    this.initPending.add(token);
    this.initSeq = undefined;
    return () => {
      if (!this.initPending.delete(token) || this.initPending.size > 0) return;
      this.initSeq = this.db.bumpSeq();
      this.initChannel?.resolve();
      this.initChannel = undefined;
    };
  }

  /** Whether the table was initialized as of this snapshot. */
  initialized(txn: ReadTxn): boolean {
    return this.initPending.size === 0 && (this.initSeq === undefined || txn.state.seq >= this.initSeq);
  }

  /** Resolves once the table is initialized; rejects with the signal's reason if it aborts first. */
  async waitInitialized(signal?: AbortSignal): Promise<void> {
    if (this.initPending.size === 0) return;
    this.initChannel ??= new Channel();
    if (!(await waitOrAbort(this.initChannel.promise, signal))) throw signal?.reason;
  }

  // ---- watch channels ----

  /** @internal */
  notify(before: Root<unknown>, after: Root<unknown>, firstRevision: number): void {
    this.tableChannel?.resolve();
    this.tableChannel = undefined;
    if (this.keyChannels.size + this.prefixChannels.size + this.indexChannels.size === 0) return;
    const a = after as Root<T>;
    const b = before as Root<T>;
    if (a.gcRevision >= firstRevision) {
      // Tombstones of this very commit were dropped: we cannot tell which keys changed, so wake everyone.
      fireAll(this.keyChannels);
      fireAll(this.prefixChannels);
      fireAll(this.indexChannels);
      return;
    }
    const keys = new Set<string>();
    const add = (_: number, e: Change<T>): undefined => {
      keys.add(e.key);
    };
    treeWalk(a.byRevision, firstRevision, add);
    treeWalk(a.graveyard, firstRevision, add);
    for (const key of keys) {
      fire(this.keyChannels, key);
      if (this.prefixChannels.size) for (let n = 0; n <= key.length; n++) fire(this.prefixChannels, key.slice(0, n));
      if (this.indexChannels.size) {
        const objs = [treeGet(b.primary, key)?.object, treeGet(a.primary, key)?.object];
        for (let i = 0; i < this.defs.length; i++) {
          for (const o of objs) if (o !== undefined) for (const k of this.userKeys(i, o)) fire(this.indexChannels, `${i}\0${k}`);
        }
      }
    }
  }

  protected committed(): Root<T> {
    return this.db.readTxn().rootOf<T>(this);
  }

  /** Whether a change committed after the snapshot matches `pred` (true when unsure). */
  protected changedSince(txn: ReadTxn, pred: (e: Change<T>) => boolean): boolean {
    const snap = txn.rootOf<T>(this);
    const cur = this.committed();
    if (cur === snap) return false;
    if (txn instanceof WriteTxn || cur.gcRevision > snap.revision) return true;
    let hit = false;
    const check = (_: number, e: Change<T>): boolean => {
      hit = pred(e);
      return !hit;
    };
    treeWalk(cur.byRevision, snap.revision + 1, check);
    if (!hit) treeWalk(cur.graveyard, snap.revision + 1, check);
    return hit;
  }
}
