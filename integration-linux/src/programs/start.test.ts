/**
 * `npm start` without the build step: `node scripts/start.js` reaches a connected client within 10 s, and on
 * SIGINT stops every program it started, removes its temp directory and exits 0. It does the same when its
 * parent (npm) dies without passing a signal on.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { expect } from "chai";
import { repoRoot } from "./harness.js";

/** True while `pid` runs (a zombie no parent has reaped yet counts as ended). */
function alive(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, "utf8"));
  } catch {
    return false;
  }
}

/**
 * Waits until none of `pids` runs, for processes that are not our children: no exit event reaches us, so this
 * polls /proc (bounded) and returns the ones still running at the deadline.
 */
async function gone(pids: number[], timeoutMs = 5_000): Promise<number[]> {
  const deadline = Date.now() + timeoutMs;
  while (pids.some(alive) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  return pids.filter(alive);
}

describe("npm start (scripts/start.js)", function () {
  this.timeout(60_000);
  let child: ChildProcess | undefined;
  let pids: number[] = [];

  afterEach(async () => {
    if (child && child.exitCode === null && child.signalCode === null) {
      const exited = once(child, "exit");
      child.kill("SIGKILL");
      await exited;
    }
    // The programs run in their own process groups; nothing may outlive the test even when it failed.
    for (const pid of pids) if (alive(pid)) process.kill(pid, "SIGKILL");
    child = undefined;
    pids = [];
  });

  /** Spawns `argv`, which runs start.js, and waits for the connection's details; `pids` are the script's and the programs'. */
  async function startMesh(argv: [string, ...string[]]): Promise<{ c: ChildProcess; output: () => string; dir: string; tookMs: number }> {
    const started = Date.now();
    const c = spawn(argv[0], argv.slice(1), {
      cwd: repoRoot,
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, NSM_LOG_LEVEL: "INFO" },
    });
    child = c;
    let out = "";
    let connectedAt = 0;
    c.stdout?.setEncoding("utf8");
    c.stderr?.setEncoding("utf8");
    c.stderr?.on("data", (s: string) => {
      out += s;
    });
    // The details (path, addresses, the ping with the kernel data plane) follow the "connected" line in
    // later writes; the "keeping … refreshed" line comes after all of them.
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no "connected" line within 10 s:\n${out}`)), 10_000);
      c.stdout?.on("data", (s: string) => {
        out += s;
        pids = [...out.matchAll(/(?:pid|process) (\d+)/g)].map((m) => Number(m[1]));
        if (connectedAt === 0 && /^connected in /m.test(out)) {
          connectedAt = Date.now();
          clearTimeout(timer);
        }
        if (connectedAt !== 0 && /^keeping the connection refreshed/m.test(out)) resolve();
      });
      c.once("exit", (code) => {
        clearTimeout(timer);
        reject(new Error(`start.js exited with ${code} before connecting:\n${out}`));
      });
    });
    const dir = /starting a single-node mesh in (\S+)/.exec(out)?.[1] ?? "";
    expect(existsSync(dir), dir).to.equal(true);
    expect(new Set(pids).size, out).to.equal(6); // the script and five programs
    return { c, output: () => out, dir, tookMs: connectedAt - started };
  }

  it("reaches a connected client within 10 s and exits 0 on SIGINT with nothing left behind", async () => {
    const { c, output, dir, tookMs } = await startMesh([process.execPath, join(repoRoot, "scripts", "start.js")]);
    expect(tookMs).to.be.below(10_000);
    expect(output()).to.match(/^data plane: (NOOP|KERNEL)/m);
    expect(output()).to.match(/path \(4 segments\)/);
    if (/^data plane: KERNEL/m.test(output())) expect(output()).to.match(/ping \S+ from the client's netns over nsm-1: ok/);

    const exited = once(c, "exit");
    c.kill("SIGINT");
    const [code, signal] = (await exited) as [number | null, NodeJS.Signals | null];
    expect({ code, signal }, output()).to.deep.equal({ code: 0, signal: null });
    expect(output()).to.match(/stopped cleanly/);
    expect(pids.filter(alive), "programs still running").to.deep.equal([]);
    expect(existsSync(dir), "temp dir removed").to.equal(false);
  });

  it("stops the mesh when its parent dies without passing a signal on (npm killed outside a terminal)", async () => {
    // A shell that does not exec stands in for npm: the script is its child, and SIGKILL reaches only the shell.
    const { c, output, dir } = await startMesh(["sh", "-c", `"${process.execPath}" "${join(repoRoot, "scripts", "start.js")}"; true`]);
    const ended = once(c.stdout as NodeJS.ReadableStream, "end"); // the script holds the pipe until it exits
    c.kill("SIGKILL");
    await ended;
    expect(output()).to.match(/npm \(our parent\) exited: stopping the mesh/);
    expect(output()).to.match(/stopped cleanly/);
    // Its stdout closed as it exited; the kernel may still be finishing the process.
    expect(await gone(pids), "script and programs still running").to.deep.equal([]);
    expect(existsSync(dir), "temp dir removed").to.equal(false);
  });
});
