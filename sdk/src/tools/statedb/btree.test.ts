import { expect } from "chai";
import { type Tree, TreeDraft, emptyTree, treeGet, treeValues, treeWalk } from "./btree.js";

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

describe("statedb btree", () => {
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
});
