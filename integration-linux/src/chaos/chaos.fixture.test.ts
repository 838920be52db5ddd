import { expect } from "chai";
import { parseMetrics, resting, restingLevels } from "./chaos.fixture.js";

describe("chaos fixture: reading a program's resting level", () => {
  it("takes the value most readings agree on, not a reading that caught a timer in flight", () => {
    expect(resting([1001, 1001, 1000, 1001, 1001])).to.equal(1001);
    expect(resting([1000, 1001, 1001])).to.equal(1001);
    expect(resting([7])).to.equal(7);
  });

  it("takes the higher value on a tie, and NaN for no readings", () => {
    expect(resting([3, 4, 4, 3])).to.equal(4);
    expect(resting([])).to.be.NaN;
  });

  it("reads every key the given number of times", async () => {
    const seq = [
      { a: 1, b: 5 },
      { a: 2, b: 5 },
      { a: 2, b: 4 },
    ];
    let i = 0;
    const levels = await restingLevels(async () => seq[i++] as { a: number; b: number }, 3, 0);
    expect(i).to.equal(3);
    expect(levels).to.deep.equal({ a: 2, b: 5 });
  });

  it("parses Prometheus text by name and sorted labels, leaving out the program label", () => {
    const m = parseMetrics(
      ["# HELP x y", 'nsm_clock_timers_pending{program="nsmgr"} 1001', 'nsm_registry_entries{program="r",kind="nse"} 2', ""].join("\n"),
    );
    expect(m.get("nsm_clock_timers_pending")).to.equal(1001);
    expect(m.get('nsm_registry_entries{kind="nse"}')).to.equal(2);
  });
});
