import { isIP } from "node:net";
import { expect } from "chai";
import { Code, isStatusError } from "../status/index.js";
import {
  type Cidr,
  cidrContains,
  cidrCovers,
  cidrLast,
  cidrOf,
  cidrOverlaps,
  familyOf,
  formatCidr,
  formatIp,
  formatMac,
  type Ip,
  ipBits,
  ipWords,
  isPrefixLength,
  nextIp,
  offsetIp,
  parseCidr,
  parseIp,
  parseMac,
  parseOui,
  readCidr,
  readPrefix,
  requireCidr,
  requireIp,
  requireMac,
} from "./index.js";

const cidr = (s: string): Cidr => parseCidr(s, { bare: true }) ?? expect.fail(`"${s}" should parse`);
const ip = (s: string): Ip => parseIp(s) ?? expect.fail(`"${s}" should parse`);
const invalidArgument = (re: RegExp) => (e: unknown) => isStatusError(e, Code.InvalidArgument) && re.test((e as Error).message);

describe("netaddr: parsing", () => {
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
    "::1.2.3.4",
    "1:2:3:4:5:6:1.2.3.4",
    "0.0.0.0",
    "198.51.100.255",
    "255.255.255.255",
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
    "1:2:3:4:5:6:7:1.2.3.4",
    "1.2.3.4::",
    "::1.2.3.4:1",
    "12345::",
    "g::1",
    "1:2:3:4:5:6:7",
    "256.1.1.1",
    "1.2.3",
    "01.2.3.4",
    "1.2.3.4.5",
    "1.2.3.4%eth0",
    "::ffff:1.2.3",
    "::ffff:01.2.3.4",
    "a.b.c.d",
    " 1.2.3.4",
    "fe80::1%",
    "fe80::1%eth0",
  ];

  it("accepts exactly what node:net accepts (zones only when asked)", () => {
    for (const a of valid) {
      expect(isIP(a), a).to.not.equal(0);
      expect(familyOf(a), a).to.equal(isIP(a));
      expect(readPrefix(a, { bare: true }), a).to.be.an("object");
    }
    for (const a of invalid) {
      expect(familyOf(a), a).to.equal(undefined);
      expect(parseIp(a), a).to.equal(undefined);
      expect(readPrefix(a, { bare: true }), a).to.equal("address");
      if (!a.includes("%")) expect(isIP(a), a).to.equal(0);
    }
    expect(familyOf("fe80::1%eth0", { zone: true })).to.equal(6);
    expect(familyOf("::ffff:1.2.3.4%eth0.1", { zone: true })).to.equal(6);
    expect(familyOf("1.2.3.4%eth0", { zone: true }), "IPv4 has no zone").to.equal(undefined);
    expect(familyOf("fe80::1%", { zone: true })).to.equal(undefined);
    expect(familyOf("fe80::1%e/0", { zone: true })).to.equal(undefined);
    expect(parseIp("fe80::1%eth0", { zone: true })).to.deep.equal(ip("fe80::1"));
  });

  it("agrees with node:net on random text", () => {
    // A fixed-seed xorshift, so a failure reproduces.
    let seed = 12345;
    const rand = (n: number): number => {
      seed ^= seed << 13;
      seed ^= seed >>> 17;
      seed ^= seed << 5;
      return (seed >>> 0) % n;
    };
    const alphabet = ["0", "1", "2", "5", "9", "a", "f", "F", "g", ":", ":", "::", ".", ".", "%", "e", "255", "256", "01", "ffff"];
    for (let i = 0; i < 20_000; i++) {
      let s = "";
      for (let n = 1 + rand(16); n > 0; n--) s += alphabet[rand(alphabet.length)];
      expect(familyOf(s, { zone: true }) ?? 0, s).to.equal(isIP(s));
      expect(familyOf(s) ?? 0, s).to.equal(s.includes("%") ? 0 : isIP(s));
    }
  });

  it("reads words and lengths", () => {
    expect(readPrefix("fd00:1::2/64")).to.deep.equal({ family: 6, len: 64, words: [0xfd00, 1, 0, 0, 0, 0, 0, 2] });
    expect(readPrefix("::ffff:198.51.100.1", { bare: true })).to.deep.equal({
      family: 6,
      len: 128,
      words: [0, 0, 0, 0, 0, 0xffff, 0xc633, 0x6401],
    });
    expect(readPrefix("198.51.100.7/24")).to.deep.equal({ family: 4, len: 24, words: [0xc633, 0x6407] });
    expect(ipWords("198.51.100.7")).to.deep.equal([0xc633, 0x6407]);
    expect(readPrefix("198.51.100.0/33")).to.equal("length");
    expect(readPrefix("fd00::/129")).to.equal("length");
    expect(readPrefix("fd00::/x")).to.equal("form");
    expect(readPrefix("fd00::/1280")).to.equal("form");
    expect(readPrefix("fd00::")).to.equal("form");
    expect(readPrefix("fd00::/")).to.equal("form");
    expect(readPrefix("fd00::1%eth0/64", { zone: true })).to.deep.equal({ family: 6, len: 64, words: [0xfd00, 0, 0, 0, 0, 0, 0, 1] });
    expect(readPrefix("x/8")).to.equal("address");
    expect(readPrefix("/8")).to.equal("address");
  });

  it("checks prefix lengths", () => {
    for (const [len, family, ok] of [
      [0, 4, true],
      [32, 4, true],
      [33, 4, false],
      [128, 6, true],
      [129, 6, false],
      [-1, 6, false],
      [1.5, 4, false],
    ] as const) {
      expect(isPrefixLength(len, family), `${len}/${family}`).to.equal(ok);
    }
    expect(ipBits(4)).to.equal(32);
    expect(ipBits(6)).to.equal(128);
  });
});

describe("netaddr: addresses and CIDRs", () => {
  it("parses and formats IPv4 and IPv6 canonically", () => {
    for (const [input, want] of [
      ["198.51.100.7", "198.51.100.7"],
      ["0.0.0.0", "0.0.0.0"],
      ["255.255.255.255", "255.255.255.255"],
      ["fd00:0:0:0:0:0:0:1", "fd00::1"],
      ["FD00::1:0:0:0:1", "fd00:0:0:1::1"],
      ["fd00:0:0:1::", "fd00:0:0:1::"],
      ["::ffff:203.0.113.9", "::ffff:cb00:7109"],
      ["fd00:1:0:0:1:0:0:1", "fd00:1::1:0:0:1"],
      ["1:0:0:2:0:0:0:3", "1:0:0:2::3"],
      ["1:0:2:3:4:5:6:7", "1:0:2:3:4:5:6:7"],
      ["::", "::"],
      ["ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"],
    ] as const) {
      expect(formatIp(ip(input)), input).to.equal(want);
    }
    expect(ip("198.51.100.7")).to.deep.equal({ family: 4, value: 0xc6336407n });
    expect(ip("::ffff:198.51.100.7").value).to.equal(0xffffc6336407n);
    expect(parseIp("198.51.100.256")).to.equal(undefined);
    expect(parseIp("fd00::1::2")).to.equal(undefined);
  });

  it("parses prefixes, clearing host bits unless strict", () => {
    expect(formatCidr(cidr("198.51.100.77/24"))).to.equal("198.51.100.0/24");
    expect(formatCidr(cidr("FD00:0:0:0:0:0:0:1/128"))).to.equal("fd00::1/128");
    expect(formatCidr(cidr("fd00:1:0:0:2::/64"))).to.equal("fd00:1::/64");
    expect(formatIp({ family: 6, value: cidr("::ffff:203.0.113.9").base })).to.equal("::ffff:cb00:7109");
    expect(formatIp({ family: 6, value: cidr("1:0:0:2:0:0:0:3").base })).to.equal("1:0:0:2::3");
    expect(cidr("198.51.100.7")).to.deep.equal({ family: 4, base: 0xc6336407n, len: 32, size: 1n });
    expect(parseCidr("198.51.100.0/33")).to.equal(undefined);
    expect(parseCidr("nonsense")).to.equal(undefined);
    expect(parseCidr("198.51.100.7"), "bare only when asked").to.equal(undefined);
    expect(readCidr("198.51.100.7/24", { strict: true })).to.equal("hostBits");
    expect(readCidr("198.51.100.0/24", { strict: true })).to.deep.equal({ family: 4, base: 0xc6336400n, len: 24, size: 256n });
    expect(requireCidr("fd00::/64", "cidr", { strict: true }).size).to.equal(1n << 64n);
  });

  it("handles the edge prefixes /0, /32 and /128", () => {
    const all4 = cidr("0.0.0.0/0");
    const all6 = cidr("::/0");
    expect(all4).to.deep.equal({ family: 4, base: 0n, len: 0, size: 1n << 32n });
    expect(all6).to.deep.equal({ family: 6, base: 0n, len: 0, size: 1n << 128n });
    expect(cidr("198.51.100.7/0"), "/0 clears every bit").to.deep.equal(all4);
    expect(cidrLast(all4)).to.equal(0xffffffffn);
    expect(cidrLast(all6)).to.equal((1n << 128n) - 1n);
    expect(formatCidr(all6)).to.equal("::/0");
    expect(cidrContains(all4, ip("255.255.255.255"))).to.equal(true);
    expect(cidrContains(all4, ip("::1")), "families never mix").to.equal(false);
    expect(cidrContains(all6, ip("::ffff:1.2.3.4"))).to.equal(true);
    const host4 = cidr("198.51.100.7/32");
    const host6 = cidr("fd00::7/128");
    expect(host4.size).to.equal(1n);
    expect(host6.size).to.equal(1n);
    expect(cidrLast(host6)).to.equal(host6.base);
    expect(cidrContains(host4, ip("198.51.100.7"))).to.equal(true);
    expect(cidrContains(host4, ip("198.51.100.8"))).to.equal(false);
    expect(cidrCovers(all4, host4)).to.equal(true);
    expect(cidrCovers(host4, all4)).to.equal(false);
    expect(cidrCovers(host4, host4)).to.equal(true);
    expect(cidrCovers(all6, host4)).to.equal(false);
    expect(cidrOverlaps(all6, host6)).to.equal(true);
    expect(cidrOverlaps(all6, host4)).to.equal(false);
    expect(cidrOf(ip("198.51.100.7"), 0)).to.deep.equal(all4);
    expect(cidrOf(ip("fd00::7"), 128)).to.deep.equal(host6);
    expect(() => cidrOf(ip("fd00::7"), 129)).to.throw(/129/);
  });

  it("tells overlapping and covering prefixes apart", () => {
    expect(cidrOverlaps(cidr("198.51.100.0/24"), cidr("198.51.100.128/25"))).to.equal(true);
    expect(cidrOverlaps(cidr("198.51.100.0/25"), cidr("198.51.100.128/25"))).to.equal(false);
    expect(cidrOverlaps(cidr("fd00::/8"), cidr("198.51.100.0/24"))).to.equal(false);
    expect(cidrOverlaps(cidr("fd00::/8"), cidr("fdff:1::/32"))).to.equal(true);
    expect(cidrCovers(cidr("198.51.100.0/24"), cidr("198.51.100.128/25"))).to.equal(true);
    expect(cidrCovers(cidr("198.51.100.128/25"), cidr("198.51.100.0/24"))).to.equal(false);
    expect(cidrCovers(cidr("198.51.100.0/25"), cidr("198.51.100.128/25"))).to.equal(false);
    expect(cidrContains(cidr("fd00::/64"), ip("fd00::ffff:0:0:1"))).to.equal(true);
    expect(cidrContains(cidr("fd00::/64"), ip("fd00:0:0:1::"))).to.equal(false);
  });

  it("steps through addresses within the family's range", () => {
    expect(nextIp(ip("198.51.100.255"))).to.deep.equal(ip("198.51.101.0"));
    expect(nextIp(ip("255.255.255.255"))).to.equal(undefined);
    expect(nextIp(ip("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"))).to.equal(undefined);
    expect(nextIp(ip("::ffff:ffff"))).to.deep.equal(ip("::1:0:0"));
    expect(offsetIp(ip("0.0.0.1"), -1n)).to.deep.equal(ip("0.0.0.0"));
    expect(offsetIp(ip("0.0.0.0"), -1n)).to.equal(undefined);
    expect(offsetIp(ip("fd00::"), 1n << 64n)).to.deep.equal(ip("fd00:0:0:1::"));
    expect(offsetIp(ip("198.51.100.7"), 0n)).to.deep.equal(ip("198.51.100.7"));
  });

  it("names the input and the field in errors about malformed text", () => {
    expect(() => requireIp("not-an-ip", "address"))
      .to.throw()
      .that.satisfies(invalidArgument(/^address: "not-an-ip" is not an IP address$/));
    expect(() => requireIp("1.2.3.4/8")).to.throw(/^"1\.2\.3\.4\/8" is not an IP address$/);
    expect(requireIp("fe80::1%eth0", "local", { zone: true })).to.deep.equal(ip("fe80::1"));
    for (const [text, opts, message] of [
      ["198.51.100.1/24", { strict: true }, /^cidr: "198\.51\.100\.1\/24" has host bits set \(the network is 198\.51\.100\.0\/24\)$/],
      ["198.51.100.0/33", {}, /^cidr: "198\.51\.100\.0\/33" has a prefix length above 32$/],
      ["fd00::/129", {}, /^cidr: "fd00::\/129" has a prefix length above 128$/],
      ["198.51.100.0", {}, /^cidr: "198\.51\.100\.0" is not a CIDR \(address\/length\)$/],
      ["x/8", {}, /^cidr: "x\/8" is not a CIDR \(address\/length\)$/],
      ["fd00::/x", {}, /^cidr: "fd00::\/x" is not a CIDR \(address\/length\)$/],
      ["x", { bare: true }, /^cidr: "x" is not an IP address or a CIDR$/],
    ] as const) {
      expect(() => requireCidr(text, "cidr", opts), text)
        .to.throw()
        .that.satisfies(invalidArgument(message));
    }
  });
});

describe("netaddr: MAC addresses", () => {
  it("parses, formats and names the input in errors", () => {
    expect(parseMac("02:AA:00:00:00:01")).to.equal(0x02aa00000001n);
    expect(formatMac(0x02aa00000001n)).to.equal("02:aa:00:00:00:01");
    expect(formatMac(0n)).to.equal("00:00:00:00:00:00");
    expect(parseMac("02-aa-00-00-00-01")).to.equal(undefined);
    expect(parseMac("02-aa-00-00-00-01", { dashes: true })).to.equal(0x02aa00000001n);
    expect(parseMac("02:aa:00:00:00")).to.equal(undefined);
    expect(parseMac("02:aa:00:00:00:0g")).to.equal(undefined);
    expect(parseOui("fa:16:3e")).to.equal(0xfa163en);
    expect(parseOui("fa-16-3e", { dashes: true })).to.equal(0xfa163en);
    expect(parseOui("fa:16")).to.equal(undefined);
    expect(() => requireMac("02:aa:00:00:00", "mac_address"))
      .to.throw()
      .that.satisfies(invalidArgument(/^mac_address: "02:aa:00:00:00" is not a MAC address$/));
  });
});
