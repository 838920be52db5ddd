/**
 * Snapshots and write transactions. Every table is a set of persistent B+trees, so a snapshot is a map of
 * root pointers and a commit swaps that map in one step; a write transaction edits per-table drafts of
 * those trees and publishes them together.
 */
import { Code, fail } from "@nsm-ts/base/status";
import { type Edit, type Tree, TreeDraft, treeFirst } from "./btree.js";
import type { Db } from "./db.js";
import { lengthSlot } from "./lpm.js";
import type { Change } from "./schema.js";

/** @internal The trees of one table in one state of the database. */
export interface Root<T> {
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

/** @internal One state of the database: a sequence number and the root of every table written so far. */
export interface DbState {
  readonly seq: number;
  readonly roots: ReadonlyMap<number, Root<unknown>>;
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
export class TableDraft<T> {
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
