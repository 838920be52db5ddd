/**
 * The persistent executor's protocol against a stand-in `ip` (a shell script speaking iproute2's batch stderr
 * protocol), so it runs without root: lines in order, the first failure stops the commit and names its line,
 * one process serves many commits, the idle end, and a missing tool reads FailedPrecondition.
 */
import { chmod, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { MockClock } from "@nsm-ts/base/clock";
import { Code, StatusError } from "@nsm-ts/base/status";
import { expect } from "chai";
import { createIpExecutor, type IpExecutor, type IpLine } from "./executor.js";
import { currentNetns, type Netns } from "./netns.js";

// Like `ip -force -batch -`: every line is counted; a line with "bad" or an unknown object (our sync lines) writes
// an error and "Command failed -:<n>" to stderr; anything else is logged as applied.
const FAKE_IP = `#!/bin/sh
echo start >> "$LOG"
n=0
while IFS= read -r line; do
  n=$((n+1))
  case "$line" in
    nsm-sync-*) echo "Object \\"$line\\" is unknown, try \\"ip help\\"." >&2; echo "Command failed -:$n" >&2 ;;
    *bad*) echo "RTNETLINK answers: File exists" >&2; echo "Command failed -:$n" >&2 ;;
    *) echo "applied $line" >> "$LOG" ;;
  esac
done
`;

const line = (...args: string[]): IpLine => ({ args, what: args.join(" ") });

describe("sdk-linux: persistent ip executor (stand-in ip)", () => {
  let dir: string;
  let log: string;
  let ip: IpExecutor | undefined;
  let ns: Netns;
  const logged = async (): Promise<string[]> => (await readFile(log, "utf8").catch(() => "")).split("\n").filter((l) => l !== "");

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "nsmts-fake-ip-"));
    log = join(dir, "log");
    await writeFile(join(dir, "ip"), FAKE_IP);
    await chmod(join(dir, "ip"), 0o755);
    process.env.LOG = log;
    ns = await currentNetns();
  });
  afterEach(async () => {
    ip?.close?.();
    ip = undefined;
    delete process.env.LOG;
    await rm(dir, { recursive: true, force: true });
  });

  it("runs commits in order in one process and stops a commit at its first failed line", async () => {
    const clock = new MockClock();
    ip = createIpExecutor({ mode: "persistent", tools: { ip: join(dir, "ip") }, clock });
    await ip.apply(ns, [line("link", "a"), line("link", "b")]);
    const err = await ip.apply(ns, [line("link", "c"), line("link", "bad"), line("link", "d")]).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).to.be.instanceOf(StatusError);
    expect((err as StatusError).code).to.equal(Code.AlreadyExists);
    expect((err as StatusError).message).to.match(/^kernel: link bad in /);
    await ip.apply(ns, [line("link", "e")]);
    expect(await logged()).to.deep.equal(["start", "applied link a", "applied link b", "applied link c", "applied link e"]);
    // Idle: the process ends after idleMs; the next commit starts another.
    await clock.advance(2000);
    await ip.apply(ns, [line("link", "f")]);
    expect((await logged()).filter((l) => l === "start")).to.have.length(2);
  });

  it("fails with FailedPrecondition when ip is not installed", async () => {
    ip = createIpExecutor({ mode: "persistent", tools: { ip: join(dir, "no-such-ip") } });
    const err = await ip.apply(ns, [line("link", "a")]).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect((err as StatusError).code).to.equal(Code.FailedPrecondition);
  });
});
