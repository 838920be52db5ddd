import { expect } from "chai";
import { compare, keyAfter, prefixEnd } from "./index.js";

describe("etcd keys", () => {
  it("prefixEnd increments the last byte; the empty prefix ranges over every key", () => {
    expect(prefixEnd("/a/").toString()).to.equal("/a0");
    expect([...prefixEnd("")]).to.deep.equal([0]);
  });
  it("keyAfter is the key with a zero byte appended", () => {
    expect([...keyAfter("ab")]).to.deep.equal([0x61, 0x62, 0]);
  });
  it("unchangedSince compares the whole prefix range against the read revision + 1", () => {
    const c = compare.unchangedSince("/x/", "41");
    expect(c.key?.toString()).to.equal("/x/");
    expect(c.range_end?.toString()).to.equal("/x0");
    expect(c.result).to.equal("Less");
    expect(c.mod_revision).to.equal("42");
  });
});
