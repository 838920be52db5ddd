/**
 * An in-memory table engine after Cilium's StateDB: tables with a primary key and secondary indexes,
 * atomic write transactions over several tables, snapshot reads, a revision per change, change streams
 * with deletions and watch channels. Every table is a set of persistent B+trees, so a snapshot is a map
 * of root pointers and a commit swaps that map in one step.
 */
import { Code, fail, StatusError } from "@nsm-ts/base/status";
import { type Edit, emptyTree, type Tree, TreeDraft, treeCeiling, treeFirst, treeGet, treeValues, treeWalk } from "./btree.js";
import { lengthSlot, parsePrefix, prefixKey } from "./ip.js";

/** A unique secondary index: at most one object per key; `key` returning undefined leaves the object out. */
export interface UniqueIndex<T> {
  readonly kind: "unique";
  key(obj: T): string | undefined;
}

/** A non-unique secondary index: an object appears under every key it returns (one per label, per name …). */
export interface MultiIndex<T> {
  readonly kind: "multi";
  keys(obj: T): readonly string[];
}

/**
 * A longest-prefix-match index over IP prefixes (`addr/len`, IPv4 or IPv6; a bare address is a host
 * prefix). Several objects may share a prefix.
 */
export interface LpmIndex<T> {
  readonly kind: "lpm";
  prefixes(obj: T): readonly string[];
}

/** A secondary index definition. */
export type IndexDef<T> = UniqueIndex<T> | MultiIndex<T> | LpmIndex<T>;

/** What defines a table: its name, its primary key and its secondary indexes by name. */
export interface TableSchema<T, I extends string> {
  /** Unique name within the database (used in errors and logs). */
  readonly name: string;
  /** The primary key; unique, any string. */
  primaryKey(obj: T): string;
  /** Secondary indexes by name. Keys of unique/multi indexes must not contain "\0". */
  readonly indexes?: { readonly [K in I]: IndexDef<T> };
}

/** An object with the revision of its last change; for changes, whether that change deleted it. */
export interface Change<T> {
  /** Primary key. */
  readonly key: string;
  /** The object (for a deletion, the object as it was when deleted). */
  readonly object: T;
  /** Global revision of the change. */
  readonly revision: number;
  /** True for a deletion (a tombstone). */
  readonly deleted: boolean;
}

/** Options of `createDb`. */
export interface DbOptions {
  /**
   * Tombstones always kept per table for iterators that resume from a revision (default 10 000). Older
   * ones are kept too while a live change iterator or delete tracker has not passed them, up to
   * `graveyardMax`. An iterator that needed a dropped tombstone fails with `ResyncRequiredError`.
   */
  readonly graveyardSize?: number;
  /** Hard bound on tombstones per table, even for trackers that lag (default 100 000). */
  readonly graveyardMax?: number;
  /** Object.freeze every inserted object (shallow), to catch mutation of stored objects; default false. */
  readonly freeze?: boolean;
}

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

interface Root<T> {
  readonly primary: Tree<string, Change<T>>;
  readonly byRevision: Tree<number, Change<T>>;
  readonly graveyard: Tree<number, Change<T>>;
  readonly secondary: ReadonlyArray<Tree<string, Change<T>>>;
  /** Per LPM index: number of stored prefixes per length (v4 at [len], v6 at [33 + len]). */
  readonly lpmLengths: ReadonlyArray<readonly number[] | undefined>;
  readonly revision: number;
  /** Highest revision of a dropped tombstone. */
  readonly gcRevision: number;
}

interface DbState {
  readonly seq: number;
  readonly roots: ReadonlyMap<number, Root<unknown>>;
}

class Channel {
  readonly promise: Promise<void>;
  resolve!: () => void;
  constructor() {
    this.promise = new Promise<void>((r) => {
      this.resolve = r;
    });
  }
}

const fired: Promise<void> = Promise.resolve();

function fireAll(m: Map<string, Channel>): void {
  for (const c of m.values()) c.resolve();
  m.clear();
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

/** A consistent snapshot of the database; later commits never show through. Cheap: create one per read. */
export class ReadTxn {
  /** @internal */
  constructor(readonly state: DbState) {}

  /** @internal The root a table has in this transaction. */
  rootOf<T>(table: TableBase): Root<T> {
    return (this.state.roots.get(table.id) ?? table.emptyRoot) as Root<T>;
  }
}

/**
 * A write transaction over the tables it locked: reads see its own writes, other tables are read at the
 * snapshot it started from. `commit()` publishes all its changes at once; `abort()` (or an exception in
 * `db.update`) drops them.
 */
export class WriteTxn extends ReadTxn {
  private edit: Edit | undefined = {};
  private readonly drafts = new Map<number, TableDraft<unknown>>();

  /** @internal */
  constructor(
    private readonly db: Db,
    state: DbState,
    /** The tables this transaction holds. */
    readonly tables: readonly TableBase[],
  ) {
    super(state);
  }

  /** True until commit or abort. */
  get open(): boolean {
    return this.edit !== undefined;
  }

  override rootOf<T>(table: TableBase): Root<T> {
    const d = this.drafts.get(table.id);
    return d ? (d.view() as Root<T>) : super.rootOf<T>(table);
  }

  /** @internal The draft of a table this transaction writes; throws if it does not hold the table. */
  draft<T>(table: TableBase): TableDraft<T> {
    if (!this.edit) fail(Code.FailedPrecondition, `statedb: write to table "${table.name}" after commit or abort`);
    let d = this.drafts.get(table.id);
    if (!d) {
      if (!this.tables.includes(table)) {
        fail(Code.FailedPrecondition, `statedb: table "${table.name}" is not part of this write transaction`);
      }
      d = new TableDraft<unknown>(super.rootOf(table), this.edit, table.lpmFlags);
      this.drafts.set(table.id, d);
    }
    return d as TableDraft<T>;
  }

  /** @internal Next global revision. */
  nextRevision(): number {
    return this.db.allocRevision();
  }

  /** Publishes every change atomically and returns a read transaction of the new state. */
  commit(): ReadTxn {
    if (!this.edit) fail(Code.FailedPrecondition, "statedb: commit after commit or abort");
    this.edit = undefined;
    const changed: Array<{ table: TableBase; before: Root<unknown>; after: Root<unknown>; first: number }> = [];
    const base = this.db.current();
    const roots = new Map(base.roots);
    for (const t of this.tables) {
      const d = this.drafts.get(t.id);
      if (!d?.dirty) continue;
      const after = d.finish(this.db.graveyardSize, this.db.graveyardMax, t.trackedFloor());
      changed.push({ table: t, before: base.roots.get(t.id) ?? t.emptyRoot, after, first: d.firstRevision });
      roots.set(t.id, after);
    }
    const next = this.db.publish(changed.length ? { seq: base.seq + 1, roots } : base, this);
    for (const c of changed) c.table.notify(c.before, c.after, c.first);
    return new ReadTxn(next);
  }

  /** Drops every change; the tables are released. Safe to call after commit (no-op). */
  abort(): void {
    if (!this.edit) return;
    this.edit = undefined;
    this.drafts.clear();
    this.db.publish(undefined, this);
  }
}

/** @internal Per-table edit state inside a write transaction. */
class TableDraft<T> {
  readonly primary: TreeDraft<string, Change<T>>;
  readonly byRevision: TreeDraft<number, Change<T>>;
  readonly graveyard: TreeDraft<number, Change<T>>;
  readonly secondary: TreeDraft<string, Change<T>>[];
  private readonly lpmLengths: Array<number[] | undefined>;
  private lpmCopied: boolean[];
  revision: number;
  gcRevision: number;
  firstRevision = 0;
  dirty = false;
  private cached: Root<T> | undefined;

  constructor(root: Root<T>, edit: Edit, lpm: readonly boolean[]) {
    this.primary = new TreeDraft(root.primary, edit);
    this.byRevision = new TreeDraft(root.byRevision, edit);
    this.graveyard = new TreeDraft(root.graveyard, edit);
    this.secondary = root.secondary.map((t) => new TreeDraft(t, edit));
    this.lpmLengths = root.lpmLengths.map((x, i) => (lpm[i] ? (x as number[]) : undefined));
    this.lpmCopied = lpm.map(() => false);
    this.revision = root.revision;
    this.gcRevision = root.gcRevision;
  }

  touch(revision: number): void {
    if (!this.dirty) this.firstRevision = revision;
    this.dirty = true;
    this.revision = revision;
    this.cached = undefined;
  }

  countLength(index: number, storeKey: string, delta: number): void {
    let arr = this.lpmLengths[index] as number[];
    if (!this.lpmCopied[index]) {
      arr = arr.slice();
      this.lpmLengths[index] = arr;
      this.lpmCopied[index] = true;
    }
    const slot = lengthSlot(storeKey);
    arr[slot] = (arr[slot] ?? 0) + delta;
  }

  view(): Root<T> {
    this.cached ??= {
      primary: this.primary.tree(),
      byRevision: this.byRevision.tree(),
      graveyard: this.graveyard.tree(),
      secondary: this.secondary.map((s) => s.tree()),
      lpmLengths: this.lpmLengths,
      revision: this.revision,
      gcRevision: this.gcRevision,
    };
    return this.cached;
  }

  /** Seals the draft; drops tombstones beyond `size` that every tracker passed (`floor`), and beyond `max`. */
  finish(size: number, max: number, floor: number): Root<T> {
    while (this.graveyard.size > size) {
      const first = treeFirst(this.graveyard.tree());
      if (!first || (first[0] > floor && this.graveyard.size <= max)) break;
      this.graveyard.delete(first[0]);
      this.gcRevision = Math.max(this.gcRevision, first[0]);
    }
    this.cached = undefined;
    return this.view();
  }
}

/** The part of a table the database handles without knowing its object type. */
export abstract class TableBase {
  /** @internal */
  readonly id: number;
  /** @internal */
  abstract readonly emptyRoot: Root<unknown>;
  /** @internal Which secondary indexes are LPM indexes. */
  abstract readonly lpmFlags: readonly boolean[];
  /** @internal The write transaction holding this table. */
  lockedBy: WriteTxn | undefined;

  constructor(
    /** The table's name. */
    readonly name: string,
    id: number,
  ) {
    this.id = id;
  }

  /** @internal Lowest position of the live delete trackers (Infinity when none). */
  abstract trackedFloor(): number;

  /** @internal Fires watch channels after a commit. */
  abstract notify(before: Root<unknown>, after: Root<unknown>, firstRevision: number): void;
}

type Watched<R> = R & { readonly watch: Promise<void> };

/**
 * A table of immutable objects of type T with secondary indexes named I. Objects must not be changed
 * after insertion (snapshots share them); write a modified copy instead. Reads take a transaction.
 */
export class Table<T, I extends string = never> extends TableBase {
  /** @internal */
  readonly emptyRoot: Root<unknown>;
  /** @internal */
  readonly lpmFlags: readonly boolean[];
  private readonly indexNames: readonly I[];
  private readonly defs: ReadonlyArray<IndexDef<T>>;
  private tableChannel: Channel | undefined;
  private readonly keyChannels = new Map<string, Channel>();
  private readonly prefixChannels = new Map<string, Channel>();
  private readonly indexChannels = new Map<string, Channel>();
  private readonly initPending = new Set<string>();
  private initSeq: number | undefined;
  private initChannel: Channel | undefined;
  private initCounter = 0;
  private readonly trackers = new Set<{ pos: number }>();

  /** @internal Use `db.createTable`. */
  constructor(
    /** The database the table belongs to. */
    readonly db: Db,
    id: number,
    private readonly schema: TableSchema<T, I>,
  ) {
    super(schema.name, id);
    const idx = (schema.indexes ?? {}) as Record<string, IndexDef<T>>;
    this.indexNames = Object.keys(idx) as I[];
    this.defs = this.indexNames.map((n) => idx[n] as IndexDef<T>);
    this.lpmFlags = this.defs.map((d) => d.kind === "lpm");
    this.emptyRoot = {
      primary: emptyTree(),
      byRevision: emptyTree(),
      graveyard: emptyTree(),
      secondary: this.defs.map(() => emptyTree()),
      lpmLengths: this.defs.map((d) => (d.kind === "lpm" ? new Array<number>(162).fill(0) : undefined)),
      revision: 0,
      gcRevision: 0,
    };
  }

  // ---- reads ----

  /** The object with this primary key. */
  get(txn: ReadTxn, key: string): T | undefined {
    return treeGet(txn.rootOf<T>(this).primary, key)?.object;
  }

  /** The object with this primary key and the revision of its last change. */
  getEntry(txn: ReadTxn, key: string): Change<T> | undefined {
    return treeGet(txn.rootOf<T>(this).primary, key);
  }

  /** Like `getEntry`, plus a watch that resolves once when this key changes after the snapshot. */
  getWatch(txn: ReadTxn, key: string): { readonly entry: Change<T> | undefined; readonly watch: Promise<void> } {
    const snap = txn.rootOf<T>(this);
    const entry = treeGet(snap.primary, key);
    const cur = this.committed();
    if (cur !== snap && treeGet(cur.primary, key) !== entry) return { entry, watch: fired };
    return { entry, watch: channel(this.keyChannels, key) };
  }

  /** Every object in primary-key order: lazy (and re-iterable) on a read snapshot, an array in a write txn. */
  all(txn: ReadTxn): Iterable<T> {
    const root = txn.rootOf<T>(this);
    const values = function* (): Generator<T, void, undefined> {
      for (const e of treeValues(root.primary)) yield e.object;
    };
    return txn instanceof WriteTxn ? [...values()] : { [Symbol.iterator]: values };
  }

  /** Objects whose primary key starts with `prefix`, in key order. */
  prefix(txn: ReadTxn, prefix: string): T[] {
    const out: T[] = [];
    this.scan(txn, { prefix }, (e) => {
      out.push(e.object);
      return true;
    });
    return out;
  }

  /**
   * Visits entries in primary-key order, starting right after `after` (exclusive) among keys that start with
   * `prefix`, until `fn` returns false. A seek, not a scan from the first key: paging through a big table costs
   * each page only its own entries.
   */
  scan(txn: ReadTxn, opts: { readonly after?: string; readonly prefix?: string }, fn: (entry: Change<T>) => boolean | undefined): void {
    const prefix = opts.prefix ?? "";
    const from = opts.after !== undefined && opts.after >= prefix ? `${opts.after}\0` : prefix;
    treeWalk(txn.rootOf<T>(this).primary, from, (k, e) => {
      if (!k.startsWith(prefix)) return false;
      return fn(e);
    });
  }

  /**
   * One page of objects in primary-key order: keys after `after` (exclusive) that start with `prefix`, at
   * most `limit`. `next` is the key to pass as `after` for the following page, absent on the last page.
   */
  page(
    txn: ReadTxn,
    opts: { readonly limit: number; readonly after?: string; readonly prefix?: string },
  ): { readonly objects: T[]; readonly next?: string } {
    const objects: T[] = [];
    let last: string | undefined;
    let more = false;
    this.scan(txn, opts, (e) => {
      if (objects.length >= opts.limit) {
        more = true;
        return false;
      }
      objects.push(e.object);
      last = e.key;
      return true;
    });
    return more && last !== undefined ? { objects, next: last } : { objects };
  }

  /** Like `prefix`, plus a watch that resolves once when any key with the prefix changes. */
  prefixWatch(txn: ReadTxn, prefix: string): Watched<{ readonly objects: T[] }> {
    const objects = this.prefix(txn, prefix);
    const changed = this.changedSince(txn, (e) => e.key.startsWith(prefix));
    return { objects, watch: changed ? fired : channel(this.prefixChannels, prefix) };
  }

  /** A watch that resolves once at the next commit that changes this table (at once if one already did). */
  watch(txn: ReadTxn): Promise<void> {
    if (this.committed() !== txn.rootOf(this)) return fired;
    this.tableChannel ??= new Channel();
    return this.tableChannel.promise;
  }

  /** The one object under `key` in a unique index, or the first under it in a multi index. */
  getBy(txn: ReadTxn, index: I, key: string): T | undefined {
    return this.list(txn, index, key, 1)[0];
  }

  /**
   * Objects under `key` in a secondary index (in primary-key order for multi indexes). For an LPM index
   * `key` is a prefix and the match is exact; use `lpm`/`containing` for longest-prefix matching.
   */
  list(txn: ReadTxn, index: I, key: string, limit = Infinity): T[] {
    const [i, def] = this.index(index);
    const tree = txn.rootOf<T>(this).secondary[i] as Tree<string, Change<T>>;
    if (def.kind === "unique") {
      const e = treeGet(tree, key);
      return e ? [e.object] : [];
    }
    const start = `${def.kind === "lpm" ? prefixKey(parsePrefix(key, `index "${index}" key`)) : key}\0`;
    const out: T[] = [];
    if (limit <= 0) return out;
    if (limit === 1) {
      const c = treeCeiling(tree, start);
      return c?.[0].startsWith(start) ? [c[1].object] : out;
    }
    treeWalk(tree, start, (k, e) => {
      if (!k.startsWith(start)) return false;
      out.push(e.object);
      return out.length < limit;
    });
    return out;
  }

  /** Like `list`, plus a watch that resolves once when an object enters or leaves `key` or changes under it. */
  listWatch(txn: ReadTxn, index: I, key: string): Watched<{ readonly objects: T[] }> {
    const objects = this.list(txn, index, key);
    const [i, def] = this.index(index);
    if (def.kind === "lpm") return { objects, watch: this.watch(txn) };
    const snap = txn.rootOf<T>(this);
    const changed = this.changedSince(txn, (e) => {
      const before = treeGet(snap.primary, e.key);
      return this.userKeys(i, e.object).includes(key) || (!!before && this.userKeys(i, before.object).includes(key));
    });
    return { objects, watch: changed ? fired : channel(this.indexChannels, `${i}\0${key}`) };
  }

  /**
   * Longest-prefix match: the object with the most specific prefix containing `addrOrPrefix` (an address
   * or an `addr/len` prefix) in an LPM index.
   */
  lpm(txn: ReadTxn, index: I, addrOrPrefix: string): T | undefined {
    return this.matchPrefixes(txn, index, addrOrPrefix, true)[0];
  }

  /** Every object whose prefix contains `addrOrPrefix`, most specific first. */
  containing(txn: ReadTxn, index: I, addrOrPrefix: string): T[] {
    return this.matchPrefixes(txn, index, addrOrPrefix, false);
  }

  /** Number of objects. */
  count(txn: ReadTxn): number {
    return txn.rootOf(this).primary.size;
  }

  /** Revision of the last change to this table in the snapshot (0 for a table never written). */
  revision(txn: ReadTxn): number {
    return txn.rootOf(this).revision;
  }

  // ---- writes ----

  /** Inserts or replaces the object with the same primary key; returns the previous one. */
  insert(txn: WriteTxn, obj: T): T | undefined {
    if (this.db.freeze) Object.freeze(obj);
    const d = txn.draft<T>(this);
    const key = this.schema.primaryKey(obj);
    const old = d.primary.get(key);
    const newKeys = this.defs.map((_, i) => this.storeKeys(i, obj, key));
    // Check unique indexes before touching anything, so a violation leaves the transaction usable.
    for (let i = 0; i < this.defs.length; i++) {
      if ((this.defs[i] as IndexDef<T>).kind !== "unique") continue;
      for (const k of newKeys[i] as string[]) {
        const other = (d.secondary[i] as TreeDraft<string, Change<T>>).get(k);
        if (other && other.key !== key) {
          fail(
            Code.AlreadyExists,
            `statedb: table "${this.name}": index "${this.indexNames[i]}" already has key "${k}" (object "${other.key}")`,
          );
        }
      }
    }
    const revision = txn.nextRevision();
    const entry: Change<T> = { key, object: obj, revision, deleted: false };
    d.primary.set(key, entry);
    if (old) d.byRevision.delete(old.revision);
    d.byRevision.set(revision, entry);
    for (let i = 0; i < this.defs.length; i++) {
      const tree = d.secondary[i] as TreeDraft<string, Change<T>>;
      const lpm = (this.defs[i] as IndexDef<T>).kind === "lpm";
      const next = newKeys[i] as string[];
      if (old) {
        for (const k of this.storeKeys(i, old.object, key)) {
          if (!next.includes(k) && tree.delete(k) && lpm) d.countLength(i, k, -1);
        }
      }
      for (const k of next) if (tree.set(k, entry) && lpm) d.countLength(i, k, 1);
    }
    d.touch(revision);
    return old?.object;
  }

  /** Replaces the object under `key` with `fn(current)`; throws `NotFound` when there is none. */
  modify(txn: WriteTxn, key: string, fn: (current: T) => T): T {
    const cur = this.get(txn, key) ?? fail(Code.NotFound, `statedb: table "${this.name}": no object with key "${key}"`);
    const next = fn(cur);
    this.insert(txn, next);
    return next;
  }

  /**
   * Inserts `obj` only if the object under its key still has `revision` (0: only if absent). Returns false
   * otherwise; writers use it to store results computed from an older read without losing newer writes.
   */
  compareAndSwap(txn: WriteTxn, revision: number, obj: T): boolean {
    const cur = this.getEntry(txn, this.schema.primaryKey(obj));
    if ((cur?.revision ?? 0) !== revision) return false;
    this.insert(txn, obj);
    return true;
  }

  /** Deletes the object with the same primary key as `obj`; returns the deleted one. */
  delete(txn: WriteTxn, obj: T): T | undefined {
    return this.deleteKey(txn, this.schema.primaryKey(obj));
  }

  /** Deletes by primary key, leaving a tombstone for change iterators; returns the deleted object. */
  deleteKey(txn: WriteTxn, key: string): T | undefined {
    const d = txn.draft<T>(this);
    const old = d.primary.get(key);
    if (!old) return undefined;
    const revision = txn.nextRevision();
    d.primary.delete(key);
    d.byRevision.delete(old.revision);
    for (let i = 0; i < this.defs.length; i++) {
      const tree = d.secondary[i] as TreeDraft<string, Change<T>>;
      const lpm = (this.defs[i] as IndexDef<T>).kind === "lpm";
      for (const k of this.storeKeys(i, old.object, key)) if (tree.delete(k) && lpm) d.countLength(i, k, -1);
    }
    d.graveyard.set(revision, { key, object: old.object, revision, deleted: true });
    d.touch(revision);
    return old.object;
  }

  /** Deletes every object; returns how many. */
  deleteAll(txn: WriteTxn): number {
    const keys = [...treeValues(txn.rootOf<T>(this).primary)].map((e) => e.key);
    for (const k of keys) this.deleteKey(txn, k);
    return keys.length;
  }

  // ---- changes ----

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

  /** The primary key of an object. */
  primaryKey(obj: T): string {
    return this.schema.primaryKey(obj);
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

  // ---- internals ----

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

  private committed(): Root<T> {
    return this.db.readTxn().rootOf<T>(this);
  }

  /** Whether a change committed after the snapshot matches `pred` (true when unsure). */
  private changedSince(txn: ReadTxn, pred: (e: Change<T>) => boolean): boolean {
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

  private index(name: I): [number, IndexDef<T>] {
    const i = this.indexNames.indexOf(name);
    if (i < 0) fail(Code.InvalidArgument, `statedb: table "${this.name}" has no index "${name}"`);
    return [i, this.defs[i] as IndexDef<T>];
  }

  /** Keys as the user's index function returns them. */
  private userKeys(i: number, obj: T): readonly string[] {
    const def = this.defs[i] as IndexDef<T>;
    if (def.kind === "unique") {
      const k = def.key(obj);
      return k === undefined ? [] : [k];
    }
    return def.kind === "multi" ? def.keys(obj) : def.prefixes(obj);
  }

  /** Keys as stored in the index tree. */
  private storeKeys(i: number, obj: T, pk: string): string[] {
    const def = this.defs[i] as IndexDef<T>;
    if (def.kind === "unique") {
      const k = def.key(obj);
      return k === undefined ? [] : [k];
    }
    if (def.kind === "multi") return def.keys(obj).map((k) => `${k}\0${pk}`);
    return def.prefixes(obj).map((p) => `${prefixKey(parsePrefix(p, `index "${this.indexNames[i]}" prefix`))}\0${pk}`);
  }

  private matchPrefixes(txn: ReadTxn, index: I, addrOrPrefix: string, first: boolean): T[] {
    const [i, def] = this.index(index);
    if (def.kind !== "lpm") fail(Code.InvalidArgument, `statedb: index "${index}" of table "${this.name}" is not an LPM index`);
    const p = parsePrefix(addrOrPrefix, "address");
    const root = txn.rootOf<T>(this);
    const counts = root.lpmLengths[i] as readonly number[];
    const tree = root.secondary[i] as Tree<string, Change<T>>;
    const off = p.family === 6 ? 33 : 0;
    const out: T[] = [];
    for (let len = p.len; len >= 0; len--) {
      if (!counts[off + len]) continue;
      const start = `${prefixKey(p, len)}\0`;
      if (first) {
        const c = treeCeiling(tree, start);
        if (c?.[0].startsWith(start)) return [c[1].object];
        continue;
      }
      treeWalk(tree, start, (k, e) => {
        if (!k.startsWith(start)) return false;
        out.push(e.object);
      });
    }
    return out;
  }
}

function channel(m: Map<string, Channel>, key: string): Promise<void> {
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

/** An in-memory database of tables. Create with `createDb`. */
export class Db {
  /** @internal */
  readonly graveyardSize: number;
  /** @internal */
  readonly graveyardMax: number;
  /** @internal */
  readonly freeze: boolean;
  private state: DbState = { seq: 0, roots: new Map() };
  private rev = 0;
  private nextTableId = 1;
  private readonly names = new Set<string>();
  private readonly tables: TableBase[] = [];
  private waiters: Array<{ tables: readonly TableBase[]; grant: (txn: WriteTxn) => void }> = [];

  /** @internal Use `createDb`. */
  constructor(opts: DbOptions = {}) {
    this.graveyardSize = opts.graveyardSize ?? 10_000;
    this.graveyardMax = Math.max(this.graveyardSize, opts.graveyardMax ?? 100_000);
    this.freeze = opts.freeze ?? false;
  }

  /** Defines a table. Names are unique within the database. */
  createTable<T, I extends string = never>(schema: TableSchema<T, I>): Table<T, I> {
    if (this.names.has(schema.name)) fail(Code.AlreadyExists, `statedb: table "${schema.name}" already exists`);
    this.names.add(schema.name);
    const t = new Table<T, I>(this, this.nextTableId++, schema);
    this.tables.push(t);
    return t;
  }

  /** A snapshot of every table. */
  readTxn(): ReadTxn {
    return new ReadTxn(this.state);
  }

  /** The last revision handed out (every change takes the next one). */
  revision(): number {
    return this.rev;
  }

  /**
   * Starts a write transaction holding `tables`. Throws `Aborted` when another open write transaction
   * holds one of them (use `update` to wait instead). Always end it with `commit()` or `abort()`.
   */
  writeTxn(...tables: TableBase[]): WriteTxn {
    const busy = tables.find((t) => t.lockedBy);
    if (busy) fail(Code.Aborted, `statedb: table "${busy.name}" is held by another write transaction`);
    return this.lock(tables);
  }

  /**
   * Runs `fn` in a write transaction over `tables` (every table when omitted), waiting for them to be
   * free, and commits; if `fn` throws or rejects, the transaction is aborted and the error rethrown.
   */
  update<R>(fn: (txn: WriteTxn) => R | Promise<R>): Promise<R>;
  update<R>(tables: TableBase | readonly TableBase[], fn: (txn: WriteTxn) => R | Promise<R>): Promise<R>;
  async update<R>(
    a: TableBase | readonly TableBase[] | ((txn: WriteTxn) => R | Promise<R>),
    b?: (txn: WriteTxn) => R | Promise<R>,
  ): Promise<R> {
    const fn = (typeof a === "function" ? a : b) as (txn: WriteTxn) => R | Promise<R>;
    const list: readonly TableBase[] = typeof a === "function" ? this.tables : a instanceof TableBase ? [a] : (a as readonly TableBase[]);
    const txn = list.some((t) => t.lockedBy)
      ? await new Promise<WriteTxn>((grant) => this.waiters.push({ tables: list, grant }))
      : this.lock(list);
    try {
      const r = await fn(txn);
      if (txn.open) txn.commit();
      return r;
    } catch (err) {
      txn.abort();
      throw err;
    }
  }

  private lock(tables: readonly TableBase[]): WriteTxn {
    const txn = new WriteTxn(this, this.state, [...new Set(tables)]);
    for (const t of tables) t.lockedBy = txn;
    return txn;
  }

  /** @internal */
  allocRevision(): number {
    return ++this.rev;
  }

  /** @internal */
  current(): DbState {
    return this.state;
  }

  /** @internal Installs a committed state (if any), releases the transaction's tables, wakes waiters. */
  publish(state: DbState | undefined, txn: WriteTxn): DbState {
    if (state) this.state = state;
    for (const t of txn.tables) if (t.lockedBy === txn) t.lockedBy = undefined;
    const waiting = this.waiters;
    this.waiters = [];
    for (const w of waiting) {
      if (w.tables.some((t) => t.lockedBy)) this.waiters.push(w);
      else w.grant(this.lock(w.tables));
    }
    return this.state;
  }

  /** @internal A new state sequence number without table changes (initializers). */
  bumpSeq(): number {
    this.state = { seq: this.state.seq + 1, roots: this.state.roots };
    return this.state.seq;
  }
}

/** Creates an empty in-memory database. */
export function createDb(opts: DbOptions = {}): Db {
  return new Db(opts);
}
