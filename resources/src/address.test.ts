/** IP parsing and formatting, CIDR validation and the offset bitmaps the allocators are built on. */
import { StatusError } from "@nsm-ts/base/status";
import { expect } from "chai";
import { formatIp, parseIp, RangeBitmap, requireCidr } from "./index.js";

describe("resources: addresses and bitmaps", () => {
  it("parses and formats IPv4 and IPv6 canonically", () => {
    for (const [input, want] of [
      ["198.51.100.7", "198.51.100.7"],
      ["fd00:0:0:0:0:0:0:1", "fd00::1"],
      ["FD00::1:0:0:0:1", "fd00:0:0:1::1"],
      ["fd00:0:0:1::", "fd00:0:0:1::"],
      ["::ffff:203.0.113.9", "::ffff:cb00:7109"],
      ["fd00:1:0:0:1:0:0:1", "fd00:1::1:0:0:1"],
    ] as const) {
      const ip = parseIp(input);
      expect(ip, input).to.not.equal(undefined);
      if (ip !== undefined) expect(formatIp(ip)).to.equal(want);
    }
    expect(parseIp("198.51.100.256")).to.equal(undefined);
    expect(parseIp("fd00::1::2")).to.equal(undefined);
  });

  it("rejects CIDRs with host bits or bad lengths, naming the field", () => {
    for (const bad of ["198.51.100.1/24", "198.51.100.0/33", "198.51.100.0", "fd00::/129", "x/8"]) {
      expect(() => requireCidr(bad, "cidr"), bad).to.throw(StatusError, /cidr: /);
    }
    expect(requireCidr("fd00::/64", "cidr").size).to.equal(1n << 64n);
  });

  it("hands out the lowest free offset first, reuses freed ones and reports full", () => {
    const b = new RangeBitmap(70n, "first");
    const got = Array.from({ length: 70 }, () => b.take());
    expect(got).to.deep.equal(Array.from({ length: 70 }, (_, i) => BigInt(i)));
    expect(b.take()).to.equal(undefined);
    b.clear(33n);
    b.clear(5n);
    expect(b.take()).to.equal(5n);
    expect(b.take()).to.equal(33n);
    expect(b.free).to.equal(0n);
  });

  it("spread first-free starts at a random point, wraps, and still finds the last free offset", () => {
    const b = new RangeBitmap(100n, "first");
    const seen = new Set<bigint>();
    for (let i = 0; i < 100; i++) seen.add(b.take(true) ?? -1n);
    expect(seen.size).to.equal(100);
    expect(seen.has(-1n)).to.equal(false);
    expect(b.take(true)).to.equal(undefined);
    b.clear(0n);
    expect(b.take(true)).to.equal(0n);
    b.clear(99n);
    expect(b.take(true)).to.equal(99n);
  });

  it("random probing finds every free offset of a dense range and of a sparse one", () => {
    const dense = new RangeBitmap(1000n, "random");
    const seen = new Set<bigint>();
    for (let i = 0; i < 1000; i++) {
      const o = dense.take();
      expect(o).to.not.equal(undefined);
      seen.add(o ?? -1n);
    }
    expect(seen.size).to.equal(1000);
    expect(dense.take()).to.equal(undefined);
    const sparse = new RangeBitmap(1n << 64n, "random");
    const offs = new Set(Array.from({ length: 500 }, () => sparse.take()));
    expect(offs.size).to.equal(500);
  });
});
