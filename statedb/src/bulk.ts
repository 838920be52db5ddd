/**
 * Bulk inserts: `BulkInsert` gathers objects for `Table.insertMany`, working out each one's index keys as it is
 * added (so a load spread over many event-loop turns does that work as it goes), and builds the sorted keys every
 * tree of an empty table is then filled with at once (`TreeDraft.fill`).
 */
import { Code, fail } from "@nsm-ts/base/status";
import type { Change } from "./schema.js";

/** Sorted keys with their values, as `TreeDraft.fill` takes them. */
export interface SortedPairs<K, V> {
  keys: K[];
  vals: V[];
}

/** The objects under one key of one index; `members` (into `IndexMembers`) is filled by `build`, in key order. */
interface Group {
  members: number[];
  /** Position of the last object added to `members`: one naming the key twice is stored once. */
  last: number;
}

/** Every (object, key) pair of one index, in the order added; `start[pos]` is where object `pos`'s pairs begin. */
interface IndexMembers {
  groups: Map<string, Group>;
  group: Group[];
  storeKey: string[];
  pos: number[];
  start: number[];
}

/** What a `BulkInsert` needs of its table. */
export interface BulkSchema<T> {
  primaryKey(obj: T): string;
  /** Per secondary index: unique (stored as the key itself) or not (stored as key + "\0" + primary key). */
  readonly unique: readonly boolean[];
  /** The keys of `obj` in index `i` before the primary key is appended. */
  groupKeys(i: number, obj: T): readonly string[];
  readonly freeze: boolean;
}

/** The trees of a bulk insert, sorted; `conflict` names a unique key two objects share. */
export interface BulkTrees<T> {
  primary: SortedPairs<string, Change<T>>;
  byRevision: SortedPairs<number, Change<T>>;
  secondary: Array<SortedPairs<string, Change<T>>>;
  conflict?: { index: number; key: string; pk: string };
}

/** Objects gathered for `Table.insertMany` (create one with `table.bulkInsert()`; `insertMany` uses it up). */
export class BulkInsert<T> {
  private readonly objs: T[] = [];
  private readonly pks: string[] = [];
  private readonly indexes: IndexMembers[];
  private built = false;

  /** @internal Use `table.bulkInsert()`. */
  constructor(
    /** @internal The table it was created for. */
    readonly table: object,
    private readonly schema: BulkSchema<T>,
  ) {
    this.indexes = schema.unique.map(() => ({ groups: new Map(), group: [], storeKey: [], pos: [], start: [0] }));
  }

  /** Objects added. */
  get size(): number {
    return this.objs.length;
  }

  /** @internal The objects in the order added. */
  get objects(): readonly T[] {
    return this.objs;
  }

  /** Adds `obj` (immutable from now on); throws what the table's key functions throw, adding nothing then. */
  add(obj: T): void {
    if (this.built) fail(Code.FailedPrecondition, "statedb: add to a bulk insert that was already inserted");
    const s = this.schema;
    const pk = s.primaryKey(obj);
    const keys = s.unique.map((_, i) => s.groupKeys(i, obj));
    if (s.freeze) Object.freeze(obj);
    const pos = this.objs.length;
    this.objs.push(obj);
    this.pks.push(pk);
    for (let i = 0; i < keys.length; i++) {
      const ix = this.indexes[i] as IndexMembers;
      for (const g of keys[i] as readonly string[]) {
        let group = ix.groups.get(g);
        if (group === undefined) {
          group = { members: [], last: -1 };
          ix.groups.set(g, group);
        }
        ix.group.push(group);
        ix.storeKey.push(s.unique[i] ? g : `${g}\0${pk}`);
        ix.pos.push(pos);
      }
      ix.start.push(ix.group.length);
    }
  }

  /**
   * @internal Every tree's sorted contents, revisions taken from `nextRevision` in the order the objects were added
   * (of several with one primary key the last wins, as inserting them in turn would leave it).
   */
  build(nextRevision: () => number): BulkTrees<T> {
    if (this.built) fail(Code.FailedPrecondition, "statedb: a bulk insert was already inserted");
    this.built = true;
    const n = this.objs.length;
    const pks = this.pks;
    const revisions = this.objs.map(() => nextRevision());
    // A load's batches are sorted runs (etcd pages), which this sort merges rather than sorts.
    const order = Array.from(pks, (_, i) => i).sort((a, b) => {
      const x = pks[a] as string;
      const y = pks[b] as string;
      return x < y ? -1 : x > y ? 1 : a - b;
    });
    const entries: Array<Change<T> | undefined> = new Array(n);
    const live: number[] = [];
    const primary: SortedPairs<string, Change<T>> = { keys: [], vals: [] };
    for (let j = 0; j < n; j++) {
      const i = order[j] as number;
      const key = pks[i] as string;
      if (j + 1 < n && pks[order[j + 1] as number] === key) continue;
      const entry: Change<T> = { key, object: this.objs[i] as T, revision: revisions[i] as number, deleted: false };
      entries[i] = entry;
      live.push(i);
      primary.keys.push(key);
      primary.vals.push(entry);
    }
    const byRevision: SortedPairs<number, Change<T>> = { keys: [], vals: [] };
    for (const e of entries) {
      if (e === undefined) continue;
      byRevision.keys.push(e.revision);
      byRevision.vals.push(e);
    }
    const out: BulkTrees<T> = { primary, byRevision, secondary: [] };
    for (let i = 0; i < this.indexes.length; i++) {
      const pairs = this.indexPairs(i, live, entries);
      if ("conflict" in pairs) {
        out.conflict = { index: i, ...pairs.conflict };
        return out;
      }
      out.secondary.push(pairs);
    }
    return out;
  }

  /**
   * One index's sorted tree: the live objects visited in primary-key order fill each key's group in that order, so
   * only the distinct keys are sorted, never every stored key.
   */
  private indexPairs(
    i: number,
    live: readonly number[],
    entries: ReadonlyArray<Change<T> | undefined>,
  ): SortedPairs<string, Change<T>> | { conflict: { key: string; pk: string } } {
    const ix = this.indexes[i] as IndexMembers;
    const unique = this.schema.unique[i] as boolean;
    let total = 0;
    for (const pos of live) {
      for (let m = ix.start[pos] as number; m < (ix.start[pos + 1] as number); m++) {
        const g = ix.group[m] as Group;
        if (g.last === pos) continue;
        g.last = pos;
        g.members.push(m);
        total++;
      }
    }
    // Sized up front: arrays grown by push to 100,000s of entries leave every smaller copy behind as garbage.
    const out: SortedPairs<string, Change<T>> = { keys: new Array<string>(total), vals: new Array<Change<T>>(total) };
    let n = 0;
    const names = [...ix.groups.keys()].sort();
    for (const name of names) {
      const members = (ix.groups.get(name) as Group).members;
      if (unique && members.length > 1) return { conflict: { key: name, pk: this.pks[ix.pos[members[0] as number] as number] as string } };
      for (const m of members) {
        out.keys[n] = ix.storeKey[m] as string;
        out.vals[n] = entries[ix.pos[m] as number] as Change<T>;
        n++;
      }
    }
    // Without "\0" in keys, key order then primary-key order is store-key order ("\0" sorts below every other
    // character). With one (LPM keys, or a multi key breaking the rule), a store key may fall out of it: sort then.
    if (unique || !names.some((g) => g.includes("\0"))) return out;
    for (let k = 1; k < n; k++) if ((out.keys[k - 1] as string) >= (out.keys[k] as string)) return sortPairs(out.keys, out.vals);
    return out;
  }
}

/** `keys` with their `vals` sorted by key, equal keys stored once. */
function sortPairs<V>(keys: readonly string[], vals: readonly V[]): SortedPairs<string, V> {
  const order = Array.from(keys, (_, i) => i).sort((a, b) => {
    const x = keys[a] as string;
    const y = keys[b] as string;
    return x < y ? -1 : x > y ? 1 : 0;
  });
  const out: SortedPairs<string, V> = { keys: [], vals: [] };
  for (const i of order) {
    const k = keys[i] as string;
    if (out.keys[out.keys.length - 1] === k) continue;
    out.keys.push(k);
    out.vals.push(vals[i] as V);
  }
  return out;
}
