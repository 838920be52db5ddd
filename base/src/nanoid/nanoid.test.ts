import { expect } from "chai";
import { generateLinuxInterfaceName, generateString, truncateLinuxInterfaceName } from "./index.js";

describe("nanoid", () => {
  it("generates 15-character interface names from the first 10 characters of the service name", () => {
    const n = generateLinuxInterfaceName("secure-intranet-connectivity");
    expect(n).to.have.length(15);
    expect(n).to.match(/^secure-int-[0-9A-Za-z]{4}$/);
  });
  it("pads short service names with a longer random suffix", () => {
    const n = generateLinuxInterfaceName("ns");
    expect(n).to.match(/^ns-[0-9A-Za-z]{12}$/);
    expect(generateLinuxInterfaceName("ns")).to.not.equal(n);
  });
  it("draws only from the alphabet", () => {
    expect(generateString(200, "ab")).to.match(/^[ab]{200}$/);
    expect(() => generateString(-1)).to.throw(RangeError);
  });
  it("truncates requested names longer than 15 characters", () => {
    expect(truncateLinuxInterfaceName("a-very-long-interface-name")).to.equal("a-very-long-int");
    expect(truncateLinuxInterfaceName("nsm-1")).to.equal("nsm-1");
  });
});
