/**
 * A persistent (immutable, structurally shared) B+tree with transient editing, the storage under every
 * table and index. Committed trees are never modified, so a snapshot is just a root pointer; a write
 * transaction owns the nodes it copied (tagged with its `Edit` token) and mutates those in place, so a
 * bulk insert in one transaction costs about what a mutable B-tree costs.
 */

/** Owner token of a write transaction: nodes tagged with a live token may be mutated in place. */
export type Edit = object;

/** Max entries in a node before it splits; 32 keeps the tree 3–4 levels deep at 100k–1M entries. */
const MAX = 32;
/** A node this small after a delete is merged into a neighbour when the two fit into one node. */
const MIN = MAX / 4;
/** Entries per node of a tree built at once (`TreeDraft.fill`): room for later inserts before a node splits. */
const FILL = (MAX * 3) / 4;

interface Leaf<K, V> {
  edit: Edit | null;
  keys: K[];
  vals: V[];
  children?: undefined;
}

interface Branch<K, V> {
  edit: Edit | null;
  /** keys[i] is the smallest key under children[i]. */
  keys: K[];
  children: Node<K, V>[];
  vals?: undefined;
}

type Node<K, V> = Leaf<K, V> | Branch<K, V>;

/** An immutable tree: a root and an entry count. */
export interface Tree<K, V> {
  readonly root: Node<K, V> | undefined;
  readonly size: number;
}

/** The empty tree. */
export function emptyTree<K, V>(): Tree<K, V> {
  return { root: undefined, size: 0 };
}

/** First index i with keys[i] >= k. */
function lowerBound<K>(keys: K[], k: K): number {
  let lo = 0;
  let hi = keys.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if ((keys[mid] as K) < k) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** Index of the child of a branch that may hold k (the last child whose smallest key is <= k, or 0). */
function childIndex<K>(keys: K[], k: K): number {
  let lo = 0;
  let hi = keys.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if ((keys[mid] as K) <= k) lo = mid + 1;
    else hi = mid;
  }
  return lo === 0 ? 0 : lo - 1;
}

function own<K, V>(n: Node<K, V>, edit: Edit): Node<K, V> {
  if (n.edit === edit) return n;
  if (n.children) return { edit, keys: n.keys.slice(), children: n.children.slice() };
  return { edit, keys: n.keys.slice(), vals: n.vals.slice() };
}

/** Looks a key up. */
export function treeGet<K, V>(t: Tree<K, V>, k: K): V | undefined {
  let n = t.root;
  if (!n) return undefined;
  while (n.children) n = n.children[childIndex(n.keys, k)] as Node<K, V>;
  const i = lowerBound(n.keys, k);
  return n.keys[i] === k ? n.vals[i] : undefined;
}

/** The entry with the smallest key, if any. */
export function treeFirst<K, V>(t: Tree<K, V>): [K, V] | undefined {
  let n = t.root;
  if (!n || n.keys.length === 0) return undefined;
  while (n.children) n = n.children[0] as Node<K, V>;
  return [n.keys[0] as K, n.vals[0] as V];
}

/** The entry with the smallest key >= k (iterative: the hot path of LPM and unique-first lookups). */
export function treeCeiling<K, V>(t: Tree<K, V>, k: K): [K, V] | undefined {
  let n = t.root;
  if (!n) return undefined;
  let right: Node<K, V> | undefined;
  while (n.children) {
    const i = childIndex(n.keys, k);
    if (i + 1 < n.children.length) right = n.children[i + 1];
    n = n.children[i] as Node<K, V>;
  }
  const i = lowerBound(n.keys, k);
  if (i < n.keys.length) return [n.keys[i] as K, n.vals[i] as V];
  if (!right) return undefined;
  while (right.children) right = right.children[0] as Node<K, V>;
  return right.keys.length ? [right.keys[0] as K, right.vals[0] as V] : undefined;
}

/**
 * Calls fn for every entry with key >= from (every entry when from is undefined) in key order until fn
 * returns false. Used for range scans where allocating an iterator per lookup would dominate.
 */
export function treeWalk<K, V>(t: Tree<K, V>, from: K | undefined, fn: (k: K, v: V) => boolean | undefined): void {
  if (t.root) walk(t.root, from, fn);
}

function walk<K, V>(n: Node<K, V>, from: K | undefined, fn: (k: K, v: V) => boolean | undefined): boolean {
  if (n.children) {
    let i = from === undefined ? 0 : childIndex(n.keys, from);
    for (; i < n.children.length; i++) {
      if (!walk(n.children[i] as Node<K, V>, from, fn)) return false;
      from = undefined;
    }
    return true;
  }
  for (let i = from === undefined ? 0 : lowerBound(n.keys, from); i < n.keys.length; i++) {
    if (fn(n.keys[i] as K, n.vals[i] as V) === false) return false;
  }
  return true;
}

/** Lazily iterates values with key >= from in key order; safe on committed trees (they never change). */
export function* treeValues<K, V>(t: Tree<K, V>, from?: K): Generator<V, void, undefined> {
  let n = t.root;
  if (!n) return;
  const stack: Array<{ node: Branch<K, V>; i: number }> = [];
  while (n.children) {
    const i = from === undefined ? 0 : childIndex(n.keys, from);
    stack.push({ node: n, i });
    n = n.children[i] as Node<K, V>;
  }
  let leaf: Leaf<K, V> = n;
  let i = from === undefined ? 0 : lowerBound(leaf.keys, from);
  for (;;) {
    for (; i < leaf.keys.length; i++) yield leaf.vals[i] as V;
    // Climb to the nearest ancestor with a next child, then descend to its leftmost leaf.
    let top = stack[stack.length - 1];
    while (top && top.i + 1 >= top.node.children.length) {
      stack.pop();
      top = stack[stack.length - 1];
    }
    if (!top) return;
    top.i++;
    let c = top.node.children[top.i] as Node<K, V>;
    while (c.children) {
      stack.push({ node: c, i: 0 });
      c = c.children[0] as Node<K, V>;
    }
    leaf = c;
    i = 0;
  }
}

/**
 * A tree being edited by one write transaction. Nodes it copies are tagged with its edit token and
 * changed in place afterwards; `tree()` hands out the current state, which becomes immutable once the
 * transaction drops its token (commit or abort).
 */
export class TreeDraft<K, V> {
  private root: Node<K, V> | undefined;
  private count: number;
  private split: Node<K, V> | undefined;
  private changed = false;

  constructor(
    base: Tree<K, V>,
    private readonly edit: Edit,
  ) {
    this.root = base.root;
    this.count = base.size;
  }

  /** Number of entries. */
  get size(): number {
    return this.count;
  }

  /** The current state as a tree value. */
  tree(): Tree<K, V> {
    return { root: this.root, size: this.count };
  }

  /** Reads through the draft. */
  get(k: K): V | undefined {
    return treeGet(this.tree(), k);
  }

  /** Inserts or replaces; returns true when the key was new. */
  set(k: K, v: V): boolean {
    if (!this.root) {
      this.root = { edit: this.edit, keys: [k], vals: [v] };
      this.count = 1;
      return true;
    }
    this.changed = false;
    this.split = undefined;
    const r = this.ins(this.root, k, v);
    const s = this.takeSplit();
    if (s) {
      this.root = { edit: this.edit, keys: [r.keys[0] as K, s.keys[0] as K], children: [r, s] };
    } else {
      this.root = r;
    }
    if (this.changed) this.count++;
    return this.changed;
  }

  /** Removes a key; returns true when it was there. */
  delete(k: K): boolean {
    if (!this.root) return false;
    this.changed = false;
    let r: Node<K, V> | undefined = this.del(this.root, k);
    if (!this.changed) return false;
    this.count--;
    while (r?.children && r.children.length <= 1) r = r.children[0];
    if (r && r.keys.length === 0) r = undefined;
    this.root = r;
    return true;
  }

  /**
   * Fills an empty draft with `keys` (strictly ascending) and their `vals`, building the tree bottom-up: O(n), no
   * node copied or split, where n inserts cost O(n log n) and copy every node they pass.
   */
  fill(keys: readonly K[], vals: readonly V[]): void {
    if (this.count !== 0) throw new Error("statedb: TreeDraft.fill on a tree that is not empty");
    if (keys.length === 0) return;
    let level: Node<K, V>[] = [];
    for (const [from, to] of chunks(keys.length)) {
      level.push({ edit: this.edit, keys: keys.slice(from, to), vals: vals.slice(from, to) });
    }
    while (level.length > 1) {
      const up: Node<K, V>[] = [];
      for (const [from, to] of chunks(level.length)) {
        const children = level.slice(from, to);
        up.push({ edit: this.edit, keys: children.map((c) => c.keys[0] as K), children });
      }
      level = up;
    }
    this.root = level[0];
    this.count = keys.length;
  }

  private takeSplit(): Node<K, V> | undefined {
    const s = this.split;
    this.split = undefined;
    return s;
  }

  private ins(node: Node<K, V>, k: K, v: V): Node<K, V> {
    const n = own(node, this.edit);
    if (!n.children) {
      const i = lowerBound(n.keys, k);
      if (n.keys[i] === k && i < n.keys.length) {
        n.vals[i] = v;
        return n;
      }
      n.keys.splice(i, 0, k);
      n.vals.splice(i, 0, v);
      this.changed = true;
      if (n.keys.length > MAX) {
        const half = n.keys.length >>> 1;
        this.split = { edit: this.edit, keys: n.keys.splice(half), vals: n.vals.splice(half) };
      }
      return n;
    }
    const i = childIndex(n.keys, k);
    const c = this.ins(n.children[i] as Node<K, V>, k, v);
    n.children[i] = c;
    n.keys[i] = c.keys[0] as K;
    const s = this.takeSplit();
    if (s) {
      n.children.splice(i + 1, 0, s);
      n.keys.splice(i + 1, 0, s.keys[0] as K);
      if (n.keys.length > MAX) {
        const half = n.keys.length >>> 1;
        this.split = { edit: this.edit, keys: n.keys.splice(half), children: n.children.splice(half) };
      }
    }
    return n;
  }

  private del(node: Node<K, V>, k: K): Node<K, V> {
    if (!node.children) {
      const i = lowerBound(node.keys, k);
      if (i >= node.keys.length || node.keys[i] !== k) return node;
      const n = own(node, this.edit) as Leaf<K, V>;
      n.keys.splice(i, 1);
      n.vals.splice(i, 1);
      this.changed = true;
      return n;
    }
    const i = childIndex(node.keys, k);
    const c = this.del(node.children[i] as Node<K, V>, k);
    if (!this.changed) return node;
    const n = own(node, this.edit) as Branch<K, V>;
    if (c.keys.length === 0) {
      n.children.splice(i, 1);
      n.keys.splice(i, 1);
      return n;
    }
    n.children[i] = c;
    n.keys[i] = c.keys[0] as K;
    if (c.keys.length < MIN && n.children.length > 1) {
      // Merge with a neighbour when both fit into one node, so deletes do not leave a sparse tree.
      const j = i + 1 < n.children.length ? i : i - 1;
      const left = n.children[j] as Node<K, V>;
      const right = n.children[j + 1] as Node<K, V>;
      if (left.keys.length + right.keys.length <= MAX) {
        const m = own(left, this.edit);
        m.keys.push(...right.keys);
        if (m.children) m.children.push(...(right.children as Node<K, V>[]));
        else m.vals.push(...(right.vals as V[]));
        n.children.splice(j, 2, m);
        n.keys.splice(j, 2, m.keys[0] as K);
      }
    }
    return n;
  }
}

/** [from, to) ranges cutting n entries into nodes of about `FILL` each, evenly (none below `MIN` unless n is). */
function* chunks(n: number): Generator<[number, number]> {
  const count = Math.ceil(n / FILL);
  const size = Math.floor(n / count);
  const extra = n % count;
  for (let i = 0, from = 0; i < count; i++) {
    const to = from + size + (i < extra ? 1 : 0);
    yield [from, to];
    from = to;
  }
}
