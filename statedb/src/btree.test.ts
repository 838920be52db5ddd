import { expect } from "chai";
import { emptyTree, type Tree, TreeDraft, treeCeiling, treeGet, treeValues, treeWalk } from "./btree.js";

/** Small deterministic PRNG so failures reproduce. */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

function contents(t: Tree<number, number>): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  treeWalk(t, undefined, (k, v) => void out.push([k, v]));
  return out;
}

interface AnyNode {
  keys: number[];
  children?: AnyNode[];
}

/** Checks the B+tree invariants (plain comparisons: chai per key is too slow at 50k); returns the leaf depth. */
function check(n: AnyNode, lo: number, hi: number, isRoot: boolean): number {
  const bad = (what: string): never => {
    throw new Error(`btree invariant: ${what} (node starting at ${n.keys[0]})`);
  };
  if (n.keys.length > 32) bad("node over 32 entries");
  if (!isRoot && n.keys.length === 0) bad("empty node");
  for (let i = 0; i < n.keys.length; i++) {
    const k = n.keys[i] as number;
    if (k < lo || k > hi) bad("key outside its parent's range");
    if (i > 0 && k <= (n.keys[i - 1] as number)) bad("keys out of order");
  }
  if (!n.children) return 0;
  if (n.children.length !== n.keys.length) bad("children and keys differ in number");
  let depth = -1;
  n.children.forEach((c, i) => {
    if (c.keys[0] !== n.keys[i]) bad("branch key is not the child's smallest key");
    const d = check(c, n.keys[i] as number, i + 1 < n.keys.length ? (n.keys[i + 1] as number) - 1 : hi, false);
    if (depth >= 0 && d !== depth) bad("leaves at different depths");
    depth = d;
  });
  return depth + 1;
}

describe("statedb btree", () => {
  it("keeps its invariants while growing to 50k keys and shrinking back to a handful", () => {
    const rand = rng(11);
    const keys = Array.from({ length: 50_000 }, (_, i) => i).sort(() => rand() - 0.5);
    const d = new TreeDraft(emptyTree<number, number>(), {});
    for (const k of keys) d.set(k, k);
    const full = d.tree();
    const depthFull = check(full.root as unknown as AnyNode, -Infinity, Infinity, true);
    expect(depthFull).to.be.within(2, 4);
    let t = full;
    for (let round = 0; round < 10; round++) {
      const e = new TreeDraft(t, {});
      for (const k of keys.slice(round * 4_990, (round + 1) * 4_990)) e.delete(k);
      t = e.tree();
      check(t.root as unknown as AnyNode, -Infinity, Infinity, true);
    }
    expect(t.size).to.equal(100);
    expect(check(t.root as unknown as AnyNode, -Infinity, Infinity, true)).to.be.at.most(2);
    // The full version is untouched by all those deletes.
    expect(full.size).to.equal(50_000);
    expect(contents(full).length).to.equal(50_000);
    check(full.root as unknown as AnyNode, -Infinity, Infinity, true);
  });

  it("matches a Map model under random inserts and deletes, and old versions never change", () => {
    const rand = rng(7);
    let tree = emptyTree<number, number>();
    const model = new Map<number, number>();
    const versions: Array<{ tree: Tree<number, number>; expected: Array<[number, number]> }> = [];
    for (let round = 0; round < 60; round++) {
      const d = new TreeDraft(tree, {});
      const ops = 1 + Math.floor(rand() * 400);
      for (let i = 0; i < ops; i++) {
        const k = Math.floor(rand() * 3000);
        if (rand() < 0.6) {
          expect(d.set(k, round)).to.equal(!model.has(k));
          model.set(k, round);
        } else {
          expect(d.delete(k)).to.equal(model.has(k));
          model.delete(k);
        }
      }
      tree = d.tree();
      const expected = [...model.entries()].sort((a, b) => a[0] - b[0]);
      expect(tree.size).to.equal(model.size);
      expect(contents(tree)).to.deep.equal(expected);
      versions.push({ tree, expected });
    }
    for (const v of versions) expect(contents(v.tree)).to.deep.equal(v.expected);
    for (const [k, v] of model) expect(treeGet(tree, k)).to.equal(v);
    expect(treeGet(tree, -1)).to.equal(undefined);
  });

  it("finds the smallest key at or above any probe, across leaf boundaries", () => {
    const d = new TreeDraft(emptyTree<number, string>(), {});
    for (let i = 0; i < 2_000; i++) d.set(i * 2, `v${i * 2}`);
    const t = d.tree();
    for (let p = -1; p < 4_000; p++) {
      const want = p < 0 ? 0 : p % 2 === 0 ? p : p + 1;
      const got = treeCeiling(t, p);
      if (want >= 4_000) expect(got).to.equal(undefined);
      else if (got?.[0] !== want || got[1] !== `v${want}`) expect.fail(`ceiling(${p}) = ${got?.[0]}, want ${want}`);
    }
    expect(treeCeiling(emptyTree<number, string>(), 1)).to.equal(undefined);
  });

  it("iterates lazily from a lower bound and empties completely", () => {
    const d = new TreeDraft(emptyTree<string, number>(), {});
    for (let i = 0; i < 5000; i++) d.set(`k${String(i).padStart(5, "0")}`, i);
    const from = [...treeValues(d.tree(), "k04990")];
    expect(from).to.deep.equal([4990, 4991, 4992, 4993, 4994, 4995, 4996, 4997, 4998, 4999]);
    expect([...treeValues(d.tree())].length).to.equal(5000);
    for (let i = 0; i < 5000; i++) expect(d.delete(`k${String(i).padStart(5, "0")}`)).to.equal(true);
    expect(d.size).to.equal(0);
    expect(d.tree().root).to.equal(undefined);
  });

  it("builds a tree at once from sorted keys that keeps its invariants under later inserts and deletes", () => {
    for (const n of [1, 2, 23, 24, 25, 33, 577, 20_000]) {
      const keys = Array.from({ length: n }, (_, i) => i * 2);
      const d = new TreeDraft(emptyTree<number, number>(), {});
      d.fill(keys, keys);
      const t = d.tree();
      expect(t.size).to.equal(n);
      check(t.root as unknown as AnyNode, -Infinity, Infinity, true);
      expect(contents(t)).to.deep.equal(keys.map((k) => [k, k]));
      // Editing a built tree in a later transaction: odd keys go in, every third key goes out.
      const e = new TreeDraft(t, {});
      for (let k = 1; k < 2 * n; k += 2) e.set(k, k);
      for (let k = 0; k < 2 * n; k += 3) e.delete(k);
      check(e.tree().root as unknown as AnyNode, -Infinity, Infinity, true);
      const want = Array.from({ length: 2 * n }, (_, k) => k).filter((k) => k % 3 !== 0);
      expect(contents(e.tree()).map(([k]) => k)).to.deep.equal(want);
      // The built version is untouched.
      expect(contents(t).length).to.equal(n);
    }
    const full = new TreeDraft(emptyTree<number, number>(), {});
    full.set(1, 1);
    expect(() => full.fill([2], [2])).to.throw(/not empty/);
  });
});
