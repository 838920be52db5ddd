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
import { cacheEffect, IpSession, SessionRetired } from "./ip-session.js";
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
    *"dev stale"*) echo "RTNETLINK answers: No such device" >&2; echo "Command failed -:$n" >&2 ;;
    *"dev gone"*) echo "Cannot find device \\"gone\\"" >&2; echo "Command failed -:$n" >&2 ;;
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

  it("drops every name a commit looked up from iproute2's cache when it ends, so the next commit resolves afresh", async () => {
    ip = createIpExecutor({ mode: "persistent", tools: { ip: join(dir, "ip") } });
    await ip.apply(ns, [
      line("addr", "add", "198.51.100.1/32", "dev", "x0"),
      line("link", "set", "dev", "x0", "up"), // a successful `link set` drops x0 itself
      line("route", "add", "198.51.100.0/24", "dev", "x0"),
      line("link", "set", "dev", "v0", "master", "b0"),
    ]);
    expect(await logged()).to.deep.equal([
      "start",
      "applied addr add 198.51.100.1/32 dev x0",
      "applied link set dev x0 up",
      "applied route add 198.51.100.0/24 dev x0",
      "applied link set dev v0 master b0",
      "applied link set dev x0",
      "applied link set dev b0",
    ]);
  });

  it("retires the process when a drop fails with a kernel error, but not for a name that never resolved", async () => {
    ip = createIpExecutor({ mode: "persistent", tools: { ip: join(dir, "ip") } });
    const failed = (p: Promise<void>) =>
      p.then(
        () => undefined,
        (e: unknown) => e as StatusError,
      );
    // "Cannot find device" is ip's own answer: nothing was cached, the process stays.
    expect((await failed(ip.apply(ns, [line("addr", "add", "198.51.100.1/32", "dev", "gone")])))?.code).to.equal(Code.NotFound);
    await ip.apply(ns, [line("link", "a")]);
    expect((await logged()).filter((l) => l === "start")).to.have.length(1);
    // A kernel error on the drop may leave a stale entry: the next commit runs in a new process.
    expect((await failed(ip.apply(ns, [line("addr", "add", "198.51.100.1/32", "dev", "stale")])))?.code).to.equal(Code.NotFound);
    await ip.apply(ns, [line("link", "b")]);
    expect((await logged()).filter((l) => l === "start")).to.have.length(2);
    expect(await logged()).to.include("applied link b");
  });

  it("a commit that finds its session ended by the idle timer gets SessionRetired (nothing ran), not a failure", async () => {
    const clock = new MockClock();
    const session = new IpSession(ns, { tools: { ip: join(dir, "ip") }, clock, idleMs: 2000, timeoutMs: 5000, onExit: () => undefined });
    try {
      await session.run([["link", "a"]]);
      // The idle end fires after the executor handed the session out but before the commit started.
      await clock.advance(2000);
      const err = await session.run([["link", "b"]]).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).to.be.instanceOf(SessionRetired);
      expect(await logged()).to.not.include("applied link b");
    } finally {
      session.close();
    }
  });

  it("knows which names a line looks up and which one it drops", () => {
    expect(cacheEffect(["addr", "add", "198.51.100.1/32", "dev", "x0"])).to.deep.equal({ resolves: ["x0"], drops: undefined });
    expect(cacheEffect(["link", "set", "dev", "v0", "master", "b0"])).to.deep.equal({ resolves: ["v0", "b0"], drops: "v0" });
    expect(cacheEffect(["link", "del", "dev", "x0"])).to.deep.equal({ resolves: ["x0"], drops: "x0" });
    expect(cacheEffect(["link", "add", "name", "x1", "type", "vxlan", "id", "5", "remote", "203.0.113.2", "dev", "eth0"])).to.deep.equal({
      resolves: ["eth0"],
      drops: undefined,
    });
    expect(cacheEffect(["route", "replace", "198.51.100.0/24", "via", "203.0.113.1"])).to.deep.equal({ resolves: [], drops: undefined });
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
