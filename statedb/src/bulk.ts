/**
 * Sorting for `insertMany`, which builds the trees of an empty table at once (`TreeDraft.fill`) instead of inserting
 * object by object: keys come out strictly ascending with their entries.
 */
import type { Change } from "./schema.js";

/** Sorted keys with their values, as `TreeDraft.fill` takes them. */
export interface SortedPairs<K, V> {
  keys: K[];
  vals: V[];
}

/** Positions of `keys` in ascending key order; equal keys keep their given order. */
export function sortedOrder(keys: readonly string[]): number[] {
  const order = Array.from(keys, (_, i) => i);
  return order.sort((a, b) => {
    const x = keys[a] as string;
    const y = keys[b] as string;
    return x < y ? -1 : x > y ? 1 : a - b;
  });
}

/**
 * The tree of a multi or LPM index (store key = group key + "\0" + primary key) over `entries` in primary-key order:
 * grouped by key, every group is already in primary-key order, so only the distinct group keys are sorted, not
 * every store key. An object naming a key twice is stored once.
 */
export function groupedPairs<T>(entries: readonly Change<T>[], groupKeys: (obj: T) => readonly string[]): SortedPairs<string, Change<T>> {
  const groups = new Map<string, Change<T>[]>();
  for (const e of entries) {
    for (const g of groupKeys(e.object)) {
      const list = groups.get(g);
      if (list === undefined) groups.set(g, [e]);
      else list.push(e);
    }
  }
  const names = [...groups.keys()].sort();
  const out: SortedPairs<string, Change<T>> = { keys: [], vals: [] };
  for (const g of names) {
    for (const e of groups.get(g) as Change<T>[]) {
      const k = `${g}\0${e.key}`;
      if (out.keys[out.keys.length - 1] === k) continue;
      out.keys.push(k);
      out.vals.push(e);
    }
  }
  // Without "\0" in group keys, group order is store-key order ("\0" sorts below every other character). With one
  // (LPM keys, or a caller breaking the rule for multi keys), a store key may fall out of it: check, sort if so.
  if (!names.some((g) => g.includes("\0"))) return out;
  for (let i = 1; i < out.keys.length; i++) {
    if ((out.keys[i - 1] as string) >= (out.keys[i] as string)) return sortPairs(out.keys, out.vals);
  }
  return out;
}

/** `keys` with their `vals` sorted by key, equal keys (the same object twice) stored once. */
function sortPairs<V>(keys: readonly string[], vals: readonly V[]): SortedPairs<string, V> {
  const out: SortedPairs<string, V> = { keys: [], vals: [] };
  for (const i of sortedOrder(keys)) {
    const k = keys[i] as string;
    if (out.keys[out.keys.length - 1] === k) continue;
    out.keys.push(k);
    out.vals.push(vals[i] as V);
  }
  return out;
}
