import { expect } from "chai";
import { MechanismType, MetadataKey, mechanismClassOf } from "./constants.js";

describe("api constants", () => {
  it("give every mechanism type a class as upstream does", () => {
    expect(mechanismClassOf[MechanismType.KERNEL]).to.equal("LOCAL");
    expect(mechanismClassOf[MechanismType.VXLAN]).to.equal("REMOTE");
    expect(mechanismClassOf[MechanismType.NOOP]).to.equal("");
  });
  it("keep the side-channel metadata keys lower-case, as gRPC sends them", () => {
    for (const v of Object.values(MetadataKey)) expect(v).to.equal(v.toLowerCase());
  });
});
