import { create } from "@bufbuild/protobuf";
import { MechanismSchema } from "@nsm-ts/api/networkservice";
import { Code, StatusError } from "@nsm-ts/base/status";
import { expect } from "chai";
import * as vxlan from "./index.js";

function mech(src: string, dst: string, extra: Record<string, string> = {}) {
  const m = vxlan.mechanism(src);
  m.parameters.dst_ip = dst;
  Object.assign(m.parameters, extra);
  return m;
}

describe("mechanisms: VXLAN mechanism and VNI allocation", () => {
  it("offers REMOTE/VXLAN with src_ip", () => {
    const m = vxlan.mechanism("198.51.100.1");
    expect(m.cls).to.equal("REMOTE");
    expect(m.type).to.equal("VXLAN");
    expect(m.parameters).to.deep.equal({ src_ip: "198.51.100.1" });
  });

  it("parity: even when src ≤ dst, odd otherwise; original addresses win", () => {
    expect(vxlan.vniParity(mech("198.51.100.1", "198.51.100.2"))).to.equal("even");
    expect(vxlan.vniParity(mech("198.51.100.1", "198.51.100.1"))).to.equal("even");
    expect(vxlan.vniParity(mech("198.51.100.10", "198.51.100.9"))).to.equal("odd");
    expect(vxlan.vniParity(mech("fd00::2", "fd00::10"))).to.equal("even");
    expect(vxlan.vniParity(mech("198.51.100.1", "198.51.100.2", { orig_src_ip: "203.0.113.9", orig_dst_ip: "203.0.113.1" }))).to.equal(
      "odd",
    );
    expect(() => vxlan.vniParity(vxlan.mechanism("198.51.100.1"))).to.throw(StatusError);
  });

  it("allocates VNIs of the right parity within 1..2^24-1, skipping used ones", () => {
    const even = mech("198.51.100.1", "198.51.100.2");
    const odd = mech("198.51.100.2", "198.51.100.1");
    for (let i = 0; i < 1000; i++) {
      const e = vxlan.allocateVni(even, new Set());
      const o = vxlan.allocateVni(odd, new Set());
      expect(e % 2).to.equal(0);
      expect(o % 2).to.equal(1);
      for (const v of [e, o]) expect(v).to.be.within(1, vxlan.MAX_VNI);
    }
    // Extremes of the random source.
    expect(vxlan.allocateVni(even, new Set(), () => 0)).to.equal(2);
    expect(vxlan.allocateVni(even, new Set(), (n) => n - 1)).to.equal(0xfffffe);
    expect(vxlan.allocateVni(odd, new Set(), () => 0)).to.equal(1);
    expect(vxlan.allocateVni(odd, new Set(), (n) => n - 1)).to.equal(0xffffff);
    let k = 0;
    expect(vxlan.allocateVni(odd, new Set([1, 3]), () => k++)).to.equal(5);
    const err = (() => {
      try {
        vxlan.allocateVni(odd, new Set([1]), () => 0);
      } catch (e) {
        return e;
      }
    })();
    expect((err as StatusError).code).to.equal(Code.ResourceExhausted);
  });

  it("reads the VNI back, 0 when missing or invalid", () => {
    expect(vxlan.vniOf(mech("198.51.100.1", "198.51.100.2", { vni: "42" }))).to.equal(42);
    expect(vxlan.vniOf(mech("198.51.100.1", "198.51.100.2", { vni: "16777216" }))).to.equal(0);
    expect(vxlan.vniOf(mech("198.51.100.1", "198.51.100.2", { vni: "x" }))).to.equal(0);
    expect(vxlan.vniOf(create(MechanismSchema))).to.equal(0);
  });
});
