/**
 * Reads of a table: by primary key, in key order (scans, prefixes, pages), by secondary index and by
 * longest-prefix match, each also with a watch that fires when what it read changes.
 */
import { Code, fail } from "@nsm-ts/base/status";
import { type Tree, treeCeiling, treeGet, treeValues, treeWalk } from "./btree.js";
import { channel, fired, type Watched } from "./changes.js";
import { parsePrefix, prefixKey } from "./lpm.js";
import type { Change } from "./schema.js";
import { type ReadTxn, WriteTxn } from "./txn.js";
import { TableWrites } from "./writes.js";

/**
 * A table of immutable objects of type T with secondary indexes named I. Objects must not be changed
 * after insertion (snapshots share them); write a modified copy instead. Reads take a transaction.
 */
export class Table<T, I extends string = never> extends TableWrites<T, I> {
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
