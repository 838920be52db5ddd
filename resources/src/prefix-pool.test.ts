/** The vL3 prefix pool: requested, lowest free and excluded prefixes, release, and a full pool. */
import { StatusError } from "@nsm-ts/base/status";
import { expect } from "chai";
import { createPrefixPool } from "./index.js";

describe("resources: vL3 prefix pool", () => {
  it("allocates the requested prefix, else the lowest free one outside the exclusions, and releases", () => {
    const pool = createPrefixPool({ prefix: "169.254.0.0/16", prefixLength: 24, excludePrefixes: ["169.254.0.0/24"] });
    expect(pool.allocate("169.254.7.0/24", []).prefix).to.equal("169.254.7.0/24");
    expect(pool.allocate("169.254.7.0/24", []).prefix).to.equal("169.254.1.0/24"); // taken: a fresh one
    expect(pool.allocate("203.0.113.0/24", ["169.254.2.0/23"]).prefix).to.equal("169.254.4.0/24");
    const l = pool.allocate("", []);
    expect(l.prefix).to.equal("169.254.2.0/24");
    pool.release(l);
    expect(pool.allocate("", []).prefix).to.equal("169.254.2.0/24");
    expect(pool.free).to.equal(256n - 5n);
    const tiny = createPrefixPool({ prefix: "198.51.100.0/24", prefixLength: 25 });
    tiny.allocate("", []);
    tiny.allocate("", []);
    expect(() => tiny.allocate("", [])).to.throw(StatusError, /no free \/25/);
    expect(() => tiny.allocate("", ["bogus"])).to.throw(StatusError, /exclude_prefixes\[0\]/);
  });
});
