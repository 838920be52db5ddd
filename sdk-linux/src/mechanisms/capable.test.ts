import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Code, StatusError } from "@nsm-ts/base/status";
import { expect } from "chai";
import { checkKernelCapable, effectiveCapabilities } from "./capable.js";

describe("mechanisms: checkKernelCapable", () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "nsmts-cap-"));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });
  const status = async (capEff: string): Promise<string> => {
    const p = join(dir, "status");
    await writeFile(p, `Name:\tnode\nCapInh:\t0000000000000000\nCapEff:\t${capEff}\nCapBnd:\t000001ffffffffff\n`);
    return p;
  };

  it("parses CapEff", () => {
    expect(effectiveCapabilities("CapEff:\t0000000000201000\n")).to.equal(0x201000n);
    expect(effectiveCapabilities("nothing here")).to.equal(0n);
  });

  it("says PermissionDenied, naming the missing capability, for an unprivileged process", async function () {
    if (process.platform !== "linux") this.skip();
    for (const [caps, missing] of [
      ["0000000000000000", "CAP_NET_ADMIN, CAP_SYS_ADMIN"],
      ["0000000000001000", "CAP_SYS_ADMIN"],
    ] as const) {
      const err = await checkKernelCapable({ statusPath: await status(caps) }).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).to.be.instanceOf(StatusError);
      expect((err as StatusError).code).to.equal(Code.PermissionDenied);
      expect((err as StatusError).message)
        .to.contain("needs root or CAP_NET_ADMIN")
        .and.contain(`missing ${missing}`);
    }
  });

  it("says FailedPrecondition when iproute2 is missing even with both capabilities", async function () {
    if (process.platform !== "linux") this.skip();
    const path = await status("0000000000201000");
    const err = await checkKernelCapable({ statusPath: path, ip: join(dir, "no-such-ip") }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect((err as StatusError).code).to.equal(Code.FailedPrecondition);
  });
});
