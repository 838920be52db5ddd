import { isIP } from "node:net";
import { expect } from "chai";
import { parsePrefix } from "./index.js";

describe("statedb ip prefixes", () => {
  const valid = [
    "::",
    "::1",
    "1::",
    "fd00::",
    "fd00::1",
    "fd00:1:2:3::42",
    "1:2:3:4:5:6:7:8",
    "1:2:3:4:5:6:7::",
    "::2:3:4:5:6:7:8",
    "FD00:ABCD::ef",
    "::ffff:198.51.100.1",
    "64:ff9b::203.0.113.5",
    "0.0.0.0",
    "198.51.100.255",
    "169.254.0.1",
  ];
  const invalid = [
    "",
    ":",
    ":::",
    "1:::2",
    "1::2::3",
    "fd00:",
    ":1::",
    "::1:",
    "1:2:3:4:5:6:7:8:9",
    "1:2:3:4::5:6:7:8",
    "12345::",
    "g::1",
    "1:2:3:4:5:6:7",
    "256.1.1.1",
    "1.2.3",
    "01.2.3.4",
    "1.2.3.4.5",
    "::ffff:1.2.3",
    "a.b.c.d",
  ];

  it("accepts exactly what node:net accepts", () => {
    for (const a of valid) {
      expect(isIP(a), a).to.not.equal(0);
      expect(() => parsePrefix(a), a).to.not.throw();
    }
    for (const a of invalid) {
      expect(isIP(a), a).to.equal(0);
      expect(() => parsePrefix(a), a).to.throw(/not an IP address/);
    }
  });

  it("reads words and lengths", () => {
    expect(parsePrefix("fd00:1::2/64")).to.deep.equal({ family: 6, len: 64, words: [0xfd00, 1, 0, 0, 0, 0, 0, 2] });
    expect(parsePrefix("::ffff:198.51.100.1").words).to.deep.equal([0, 0, 0, 0, 0, 0xffff, 0xc633, 0x6401]);
    expect(parsePrefix("198.51.100.7/24")).to.deep.equal({ family: 4, len: 24, words: [0xc633, 0x6407] });
    expect(() => parsePrefix("198.51.100.0/33")).to.throw(/bad length/);
    expect(() => parsePrefix("fd00::/129")).to.throw(/bad length/);
    expect(() => parsePrefix("fd00::/x")).to.throw(/bad length/);
  });
});
