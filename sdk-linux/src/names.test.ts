import { Code, StatusError } from "@nsm-ts/base/status";
import { expect } from "chai";
import { isValidIfName, ownerAlias, ownerPrefix, parseOwnerAlias, validateAlias, validateIfName } from "./index.js";
import { hashedIfName } from "./names.js";

function code(fn: () => unknown): number | undefined {
  try {
    fn();
  } catch (err) {
    return err instanceof StatusError ? err.code : -1;
  }
  return undefined;
}

describe("names: interface names", () => {
  it("accepts names up to 15 bytes", () => {
    expect(validateIfName("nsm-1")).to.equal("nsm-1");
    expect(isValidIfName("a".repeat(15))).to.equal(true);
  });

  it("rejects empty, too long, reserved and unsafe names with InvalidArgument naming the limit", () => {
    expect(code(() => validateIfName(""))).to.equal(Code.InvalidArgument);
    expect(() => validateIfName("a".repeat(16))).to.throw(/16 bytes, the limit is 15/);
    expect(() => validateIfName("ééééééééé")).to.throw(/18 bytes/);
    for (const bad of [".", "..", "a b", "a/b", "a:b", "eth%d", 'a"b', "a#b", "a\tb"]) {
      expect(isValidIfName(bad), bad).to.equal(false);
    }
  });
});

describe("names: ownership alias", () => {
  it("round-trips owner, connection id and role", () => {
    const mark = { owner: "forwarder-1", connectionId: "3f1c2a9e-0b7d-4e52-9a61-7d3c1b2a4e5f", role: "client" };
    const alias = ownerAlias(mark);
    expect(alias).to.equal("nsm-ts:forwarder-1:3f1c2a9e-0b7d-4e52-9a61-7d3c1b2a4e5f:client");
    expect(parseOwnerAlias(alias)).to.deep.equal(mark);
    expect(alias.startsWith(ownerPrefix("forwarder-1"))).to.equal(true);
    expect(validateAlias(alias)).to.equal(alias);
  });

  it("encodes separators and spaces so any id stays one token", () => {
    const mark = { owner: "node a:fwd", connectionId: "id/with:colon" };
    const alias = ownerAlias(mark);
    expect(alias).to.equal("nsm-ts:node%20a%3Afwd:id%2Fwith%3Acolon");
    expect(parseOwnerAlias(alias)).to.deep.equal(mark);
    expect(ownerPrefix("node a:fwd")).to.equal("nsm-ts:node%20a%3Afwd:");
  });

  it("ignores aliases nsm-ts did not write and rejects oversized or empty marks", () => {
    expect(parseOwnerAlias(undefined)).to.equal(undefined);
    expect(parseOwnerAlias("uplink to rack 4")).to.equal(undefined);
    expect(parseOwnerAlias("nsm-ts:only-owner")).to.equal(undefined);
    expect(code(() => ownerAlias({ owner: "", connectionId: "x" }))).to.equal(Code.InvalidArgument);
    expect(code(() => ownerAlias({ owner: "f", connectionId: "x".repeat(260) }))).to.equal(Code.InvalidArgument);
    expect(code(() => validateAlias("two words"))).to.equal(Code.InvalidArgument);
  });
});

describe("names: hashed interface names", () => {
  it("are deterministic, distinct per seed and fit 15 bytes", () => {
    const a = hashedIfName("nsm", "conn-1");
    expect(a).to.have.length(15);
    expect(a.startsWith("nsm")).to.equal(true);
    expect(hashedIfName("nsm", "conn-1")).to.equal(a);
    expect(hashedIfName("nsm", "conn-2")).to.not.equal(a);
    expect(() => hashedIfName("much-too-long", "x")).to.throw(StatusError);
  });
});
