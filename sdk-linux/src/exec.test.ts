import { Code, StatusError } from "@nsm-ts/base/status";
import { expect } from "chai";
import { runCommand, VXLAN_OVERHEAD_V4, vxlanMtu } from "./index.js";

describe("exec: runCommand", () => {
  it("feeds stdin and collects stdout, stderr and the exit code", async () => {
    const r = await runCommand(["sh", "-c", "cat; echo oops >&2; exit 3"], { stdin: "line 1\nline 2\n" });
    expect(r).to.deep.equal({ code: 3, stdout: "line 1\nline 2\n", stderr: "oops\n" });
  });

  it("says which tool is missing", async () => {
    const err = await runCommand(["nsmts-no-such-binary"]).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).to.be.instanceOf(StatusError);
    expect((err as StatusError).code).to.equal(Code.FailedPrecondition);
    expect((err as StatusError).message).to.contain("nsmts-no-such-binary not found");
  });

  it("kills the child when the signal aborts", async () => {
    const err = await runCommand(["sleep", "30"], { signal: AbortSignal.timeout(50) }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect((err as Error).name).to.equal("AbortError");
  });
});

describe("validate: vxlanMtu", () => {
  it("subtracts the VXLAN overhead of the underlay family", () => {
    expect(vxlanMtu(1500, 4)).to.equal(1500 - VXLAN_OVERHEAD_V4);
    expect(vxlanMtu(1500, 6)).to.equal(1430);
    expect(() => vxlanMtu(100, 6)).to.throw(StatusError);
  });
});
