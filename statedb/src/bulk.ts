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

/** A change being built: its revision is set when the bulk is inserted. */
type Draft<T> = { -readonly [K in keyof Change<T>]: Change<T>[K] };

/** Objects gathered for `Table.insertMany` (create one with `table.bulkInsert()`; `insertMany` uses it up). */
export class BulkInsert<T> {
  private readonly objs: T[] = [];
  private readonly pks: string[] = [];
  private readonly entries: Array<Draft<T>> = [];
  private readonly indexes: IndexMembers[];
  private built = false;
  /** Positions of the objects that stay (the last of each primary key), in primary-key order, once sorted. */
  private live: number[] | undefined;
  /** Steps of `prepare` done: after the sort, two per index (fill its groups, then lay out its tree). */
  private steps = 0;
  /** Each prepared index's sorted tree, or the unique key two objects share. */
  private readonly pairs: Array<SortedPairs<string, Change<T>> | { conflict: { key: string; pk: string } }> = [];

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
    if (this.built || this.live !== undefined) fail(Code.FailedPrecondition, "statedb: add to a bulk insert that was already prepared");
    const s = this.schema;
    const pk = s.primaryKey(obj);
    const keys = s.unique.map((_, i) => s.groupKeys(i, obj));
    if (s.freeze) Object.freeze(obj);
    const pos = this.objs.length;
    this.objs.push(obj);
    this.pks.push(pk);
    this.entries.push({ key: pk, object: obj, revision: 0, deleted: false });
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
   * Does one bounded part of the sorting `insertMany` needs (the primary keys, then per index its groups, then its
   * tree's layout: one per call) and returns true once none is left, so a caller can spread it over event-loop
   * turns; no more objects can be added after the first call. `insertMany` does what is left itself.
   */
  prepare(): boolean {
    const total = 2 * this.indexes.length;
    if (this.live === undefined) this.live = this.sortLive();
    else if (this.steps < total) {
      const i = this.steps >> 1;
      if (this.steps % 2 === 0) this.group(i, this.live);
      else this.pairs.push(this.indexPairs(i));
      this.steps++;
    }
    return this.steps === total;
  }

  /**
   * @internal Every tree's sorted contents, revisions taken from `nextRevision` in the order the objects were added
   * (of several with one primary key the last wins, as inserting them in turn would leave it).
   */
  build(nextRevision: () => number): BulkTrees<T> {
    if (this.built) fail(Code.FailedPrecondition, "statedb: a bulk insert was already inserted");
    while (!this.prepare());
    this.built = true;
    const live = this.live as number[];
    for (const e of this.entries) e.revision = nextRevision();
    const primary: SortedPairs<string, Change<T>> = { keys: new Array<string>(live.length), vals: new Array<Change<T>>(live.length) };
    const alive = new Uint8Array(this.entries.length);
    for (let j = 0; j < live.length; j++) {
      const e = this.entries[live[j] as number] as Change<T>;
      alive[live[j] as number] = 1;
      primary.keys[j] = e.key;
      primary.vals[j] = e;
    }
    const byRevision: SortedPairs<number, Change<T>> = { keys: new Array<number>(live.length), vals: new Array<Change<T>>(live.length) };
    for (let i = 0, j = 0; i < this.entries.length; i++) {
      if (alive[i] === 0) continue;
      const e = this.entries[i] as Change<T>;
      byRevision.keys[j] = e.revision;
      byRevision.vals[j++] = e;
    }
    const out: BulkTrees<T> = { primary, byRevision, secondary: [] };
    for (let i = 0; i < this.indexes.length; i++) {
      const pairs = this.pairs[i] as SortedPairs<string, Change<T>> | { conflict: { key: string; pk: string } };
      if ("conflict" in pairs) {
        out.conflict = { index: i, ...pairs.conflict };
        return out;
      }
      out.secondary.push(pairs);
    }
    return out;
  }

  /** Positions of the objects that stay, in primary-key order. */
  private sortLive(): number[] {
    const pks = this.pks;
    const n = pks.length;
    // A load's batches are sorted runs (etcd pages), which this sort merges rather than sorts.
    const order = Array.from(pks, (_, i) => i).sort((a, b) => {
      const x = pks[a] as string;
      const y = pks[b] as string;
      return x < y ? -1 : x > y ? 1 : a - b;
    });
    const live: number[] = [];
    for (let j = 0; j < n; j++) {
      const i = order[j] as number;
      if (j + 1 < n && pks[order[j + 1] as number] === pks[i]) continue;
      live.push(i);
    }
    return live;
  }

  /**
   * Fills index `i`'s groups with the live objects visited in primary-key order, so each group is in that order and
   * only the distinct keys are sorted later, never every stored key.
   */
  private group(i: number, live: readonly number[]): void {
    const ix = this.indexes[i] as IndexMembers;
    for (const pos of live) {
      for (let m = ix.start[pos] as number; m < (ix.start[pos + 1] as number); m++) {
        const g = ix.group[m] as Group;
        if (g.last === pos) continue;
        g.last = pos;
        g.members.push(m);
      }
    }
  }

  /** One index's sorted tree from its filled groups. */
  private indexPairs(i: number): SortedPairs<string, Change<T>> | { conflict: { key: string; pk: string } } {
    const ix = this.indexes[i] as IndexMembers;
    const unique = this.schema.unique[i] as boolean;
    let total = 0;
    for (const g of ix.groups.values()) total += g.members.length;
    // Sized up front: arrays grown by push to 100,000s of entries leave every smaller copy behind as garbage.
    const out: SortedPairs<string, Change<T>> = { keys: new Array<string>(total), vals: new Array<Change<T>>(total) };
    let n = 0;
    const names = [...ix.groups.keys()].sort();
    for (const name of names) {
      const members = (ix.groups.get(name) as Group).members;
      if (unique && members.length > 1) return { conflict: { key: name, pk: this.pks[ix.pos[members[0] as number] as number] as string } };
      for (const m of members) {
        out.keys[n] = ix.storeKey[m] as string;
        out.vals[n] = this.entries[ix.pos[m] as number] as Change<T>;
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
