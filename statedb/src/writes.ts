/**
 * Writes to a table inside a write transaction: insert (checking unique indexes first), modify,
 * compare-and-swap, delete (leaving a tombstone for change streams).
 */
import { Code, fail } from "@nsm-ts/base/status";
import { type TreeDraft, treeGet, treeValues } from "./btree.js";
import { groupedPairs, type SortedPairs, sortedOrder } from "./bulk.js";
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
   * Inserts `objs` in order, leaving the table as `insert` of each in turn would (a later object with the same
   * primary key replaces an earlier one; each takes a revision). Into a table that is empty in this transaction it
   * builds every tree at once from sorted keys — a load of n objects costs a sort, not n inserts that each copy or
   * split nodes — and a unique-index conflict among `objs` then fails with `AlreadyExists` before anything is written.
   */
  insertMany(txn: WriteTxn, objs: readonly T[]): void {
    const d = txn.draft<T>(this);
    if (d.primary.size > 0 || objs.length < 2) {
      for (const o of objs) this.insert(txn, o);
      return;
    }
    if (this.db.freeze) for (const o of objs) Object.freeze(o);
    const pks = objs.map((o) => this.schema.primaryKey(o));
    const revisions = objs.map(() => txn.nextRevision());
    const order = sortedOrder(pks);
    // Of several objects with one key the last wins (the sort keeps their order): as in-turn inserts would leave it.
    const byPosition: Array<Change<T> | undefined> = new Array(objs.length);
    const primary: SortedPairs<string, Change<T>> = { keys: [], vals: [] };
    for (let j = 0; j < order.length; j++) {
      const i = order[j] as number;
      const key = pks[i] as string;
      if (j + 1 < order.length && pks[order[j + 1] as number] === key) continue;
      const entry: Change<T> = { key, object: objs[i] as T, revision: revisions[i] as number, deleted: false };
      byPosition[i] = entry;
      primary.keys.push(key);
      primary.vals.push(entry);
    }
    const byRevision: SortedPairs<number, Change<T>> = { keys: [], vals: [] };
    for (const e of byPosition) {
      if (e === undefined) continue;
      byRevision.keys.push(e.revision);
      byRevision.vals.push(e);
    }
    // Every index is sorted (and unique ones checked) before any tree is written.
    const secondary = this.defs.map((def, i) =>
      def.kind === "unique" ? this.uniquePairs(i, primary.vals) : groupedPairs(primary.vals, (o) => this.groupKeys(i, o)),
    );
    d.primary.fill(primary.keys, primary.vals);
    d.byRevision.fill(byRevision.keys, byRevision.vals);
    for (let i = 0; i < this.defs.length; i++) {
      const pairs = secondary[i] as SortedPairs<string, Change<T>>;
      (d.secondary[i] as TreeDraft<string, Change<T>>).fill(pairs.keys, pairs.vals);
      if ((this.defs[i] as IndexDef<T>).kind === "lpm") for (const k of pairs.keys) d.countLength(i, k, 1);
    }
    d.touch(revisions[0] as number);
    d.touch(revisions[revisions.length - 1] as number);
  }

  /** A unique index's tree over `entries`, sorted; `AlreadyExists` when two objects share a key. */
  private uniquePairs(i: number, entries: readonly Change<T>[]): SortedPairs<string, Change<T>> {
    const keys: string[] = [];
    const vals: Change<T>[] = [];
    for (const e of entries) {
      for (const k of this.groupKeys(i, e.object)) {
        keys.push(k);
        vals.push(e);
      }
    }
    const out: SortedPairs<string, Change<T>> = { keys: [], vals: [] };
    for (const j of sortedOrder(keys)) {
      const k = keys[j] as string;
      const e = vals[j] as Change<T>;
      const n = out.keys.length;
      if (n > 0 && out.keys[n - 1] === k) {
        const other = out.vals[n - 1] as Change<T>;
        fail(
          Code.AlreadyExists,
          `statedb: table "${this.name}": index "${this.indexNames[i]}" already has key "${k}" (object "${other.key}")`,
        );
      }
      out.keys.push(k);
      out.vals.push(e);
    }
    return out;
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
