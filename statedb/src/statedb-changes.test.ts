/** statedb: change streams and tombstones. */
import { Code, isStatusError } from "@nsm-ts/base/status";
import { type Endpoint, ep, setup, take } from "@nsm-ts/testing/statedb";
import { expect } from "chai";
import { type Change, type Db, ResyncRequiredError } from "./index.js";

describe("statedb: change streams and tombstones", () => {
  let db: Db;
  let ac: AbortController;
  beforeEach(() => {
    ac = new AbortController();
  });
  afterEach(() => {
    ac.abort();
  });

  it("streams changes with deletions and resumes from a revision", async () => {
    const s = setup();
    db = s.db;
    await db.update(s.endpoints, (t) => {
      s.endpoints.insert(t, ep("a"));
      s.endpoints.insert(t, ep("b"));
      s.endpoints.insert(t, ep("c"));
    });
    const it1 = s.endpoints.changes(0, ac.signal);
    const first = await take(it1, 3);
    expect(first.map((c) => [c.key, c.deleted, c.revision])).to.deep.equal([
      ["a", false, 1],
      ["b", false, 2],
      ["c", false, 3],
    ]);
    // The iterator waits for the next commit.
    const pending = it1.next();
    await db.update(s.endpoints, (t) => {
      s.endpoints.deleteKey(t, "b");
      s.endpoints.insert(t, ep("d"));
    });
    const r = await pending;
    expect(r.value).to.deep.include({ key: "b", deleted: true, revision: 4 });
    expect((r.value as Change<Endpoint>).object.name).to.equal("b");
    await it1.return(undefined);
    const resumeAt = 4;

    await db.update(s.endpoints, (t) => {
      s.endpoints.deleteKey(t, "a");
      s.endpoints.insert(t, ep("c", ["other"]));
      s.endpoints.deleteKey(t, "d");
    });
    const it2 = s.endpoints.changes(resumeAt, ac.signal);
    const resumed = await take(it2, 3);
    expect(resumed.map((c) => [c.key, c.deleted, c.revision])).to.deep.equal([
      ["a", true, 6],
      ["c", false, 7],
      ["d", true, 8],
    ]);
    expect(resumed[1]?.object.service).to.deep.equal(["other"]);
    ac.abort();
    expect((await it2.next()).done).to.equal(true);
  });

  it("iterates changes with for-await until the signal aborts", async () => {
    const s = setup();
    db = s.db;
    await db.update(s.endpoints, (t) => void s.endpoints.insert(t, ep("a")));
    const seen: string[] = [];
    const consumer = (async () => {
      for await (const c of s.endpoints.changes(0, ac.signal)) {
        seen.push(`${c.deleted ? "-" : "+"}${c.key}@${c.revision}`);
        if (seen.length === 3) ac.abort();
      }
    })();
    await db.update(s.endpoints, (t) => void s.endpoints.insert(t, ep("b")));
    await db.update(s.endpoints, (t) => void s.endpoints.deleteKey(t, "a"));
    await consumer;
    expect(seen).to.deep.equal(["+a@1", "+b@2", "-a@3"]);
  });

  it("asks an iterator that resumes from before the bounded graveyard to resync", async () => {
    const s = setup({ graveyardSize: 2 });
    db = s.db;
    await db.update(s.endpoints, (t) => {
      for (const n of ["a", "b", "c", "d"]) s.endpoints.insert(t, ep(n));
    });
    await db.update(s.endpoints, (t) => {
      for (const n of ["a", "b", "c"]) s.endpoints.deleteKey(t, n);
    });
    // Tombstones: a@5 dropped, b@6 and c@7 kept.
    const ok = await take(s.endpoints.changes(5, ac.signal), 2);
    expect(ok.map((c) => c.key)).to.deep.equal(["b", "c"]);
    const err = await s.endpoints
      .changes(4, ac.signal)
      .next()
      .catch((e: unknown) => e);
    expect(err).to.be.instanceOf(ResyncRequiredError);
    expect(isStatusError(err, Code.OutOfRange)).to.equal(true);
    // A fresh iterator starts from the current objects.
    const fresh = await take(s.endpoints.changes(0, ac.signal), 1);
    expect(fresh.map((c) => c.key)).to.deep.equal(["d"]);
  });

  it("keeps tombstones a live tracker has not passed, up to graveyardMax", async () => {
    const s = setup({ graveyardSize: 2, graveyardMax: 4 });
    db = s.db;
    const tombstones = (after: number): string[] =>
      s.endpoints
        .changeBatch(db.readTxn(), after)
        .changes.filter((c) => c.deleted)
        .map((c) => `${c.key}@${c.revision}`);
    await db.update(s.endpoints, (t) => {
      for (const n of ["a", "b", "c", "d", "e", "f"]) s.endpoints.insert(t, ep(n));
    });
    const tracker = s.endpoints.trackDeletes(6);
    await db.update(s.endpoints, (t) => {
      for (const n of ["a", "b", "c"]) s.endpoints.deleteKey(t, n);
    });
    await db.update(s.endpoints, (t) => void s.endpoints.deleteKey(t, "d"));
    expect(tombstones(6), "all kept for the tracker").to.deep.equal(["a@7", "b@8", "c@9", "d@10"]);
    await db.update(s.endpoints, (t) => void s.endpoints.deleteKey(t, "e"));
    expect(() => tombstones(6), "the hard bound wins over a lagging tracker").to.throw(ResyncRequiredError);
    expect(tombstones(7)).to.deep.equal(["b@8", "c@9", "d@10", "e@11"]);
    tracker.advance(11);
    await db.update(s.endpoints, (t) => void s.endpoints.deleteKey(t, "f"));
    expect(tombstones(10), "passed ones go down to graveyardSize").to.deep.equal(["e@11", "f@12"]);
    tracker.close();
  });
});
