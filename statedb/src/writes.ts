/**
 * Writes to a table inside a write transaction: insert (checking unique indexes first), modify,
 * compare-and-swap, delete (leaving a tombstone for change streams).
 */
import { Code, fail } from "@nsm-ts/base/status";
import { type TreeDraft, treeGet, treeValues } from "./btree.js";
import { BulkInsert, type SortedPairs } from "./bulk.js";
import { TableChanges } from "./changes.js";
import type { Change, IndexDef } from "./schema.js";
import type { WriteTxn } from "./txn.js";

/** @internal The write layer of `Table`. */
export abstract class TableWrites<T, I extends string> extends TableChanges<T, I> {
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

  /**
   * Gathers objects for `insertMany`, working out each one's keys as it is added: a load that arrives in batches
   * over many event-loop turns does that work as it goes, leaving `insertMany` only the sorting and building.
   */
  bulkInsert(): BulkInsert<T> {
    return new BulkInsert<T>(this, {
      primaryKey: (o) => this.schema.primaryKey(o),
      unique: this.defs.map((d) => d.kind === "unique"),
      groupKeys: (i, o) => this.groupKeys(i, o),
      freeze: this.db.freeze,
    });
  }

  /**
   * Inserts `objs` (an array, or gathered by `bulkInsert`) in order, leaving the table as `insert` of each in turn
   * would (a later object with the same primary key replaces an earlier one; each takes a revision). Into a table
   * that is empty in this transaction it builds every tree at once from sorted keys — a load of n objects costs a
   * sort, not n inserts that each copy or split nodes — and a unique-index conflict among the objects then fails
   * with `AlreadyExists` before anything is written.
   */
  insertMany(txn: WriteTxn, objs: readonly T[] | BulkInsert<T>): void {
    const d = txn.draft<T>(this);
    const list = objs instanceof BulkInsert ? objs.objects : objs;
    if (objs instanceof BulkInsert && objs.table !== this) {
      fail(Code.InvalidArgument, `statedb: table "${this.name}": insertMany of objects gathered for another table`);
    }
    if (d.primary.size > 0 || list.length < 2) {
      for (const o of list) this.insert(txn, o);
      return;
    }
    let bulk = objs;
    if (!(bulk instanceof BulkInsert)) {
      bulk = this.bulkInsert();
      for (const o of list) bulk.add(o);
    }
    const trees = bulk.build(() => txn.nextRevision());
    if (trees.conflict !== undefined) {
      const { index, key, pk } = trees.conflict;
      fail(
        Code.AlreadyExists,
        `statedb: table "${this.name}": index "${this.indexNames[index]}" already has key "${key}" (object "${pk}")`,
      );
    }
    d.primary.fill(trees.primary.keys, trees.primary.vals);
    d.byRevision.fill(trees.byRevision.keys, trees.byRevision.vals);
    for (let i = 0; i < this.defs.length; i++) {
      const pairs = trees.secondary[i] as SortedPairs<string, Change<T>>;
      (d.secondary[i] as TreeDraft<string, Change<T>>).fill(pairs.keys, pairs.vals);
      if ((this.defs[i] as IndexDef<T>).kind === "lpm") for (const k of pairs.keys) d.countLength(i, k, 1);
    }
    const revs = trees.byRevision.keys;
    d.touch(revs[0] as number);
    d.touch(revs[revs.length - 1] as number);
  }

  /** Replaces the object under `key` with `fn(current)`; throws `NotFound` when there is none. */
  modify(txn: WriteTxn, key: string, fn: (current: T) => T): T {
    const cur =
      treeGet(txn.rootOf<T>(this).primary, key)?.object ??
      fail(Code.NotFound, `statedb: table "${this.name}": no object with key "${key}"`);
    const next = fn(cur);
    this.insert(txn, next);
    return next;
  }

  /**
   * Inserts `obj` only if the object under its key still has `revision` (0: only if absent). Returns false
   * otherwise; writers use it to store results computed from an older read without losing newer writes.
   */
  compareAndSwap(txn: WriteTxn, revision: number, obj: T): boolean {
    const cur = treeGet(txn.rootOf<T>(this).primary, this.schema.primaryKey(obj));
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
}
