/**
 * `npm start` without the build step: `node scripts/start.js` reaches a connected client within 10 s, and on
 * SIGINT stops every program it started, removes its temp directory and exits 0.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { expect } from "chai";
import { repoRoot } from "./harness.js";

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
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

  it("reaches a connected client within 10 s and exits 0 on SIGINT with nothing left behind", async () => {
    const started = Date.now();
    const c = spawn(process.execPath, [join(repoRoot, "scripts", "start.js")], {
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
    const ready = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no "connected" line within 10 s:\n${out}`)), 10_000);
      c.stdout?.on("data", (s: string) => {
        out += s;
        pids = [...out.matchAll(/pid (\d+)/g)].map((m) => Number(m[1]));
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
    await ready;
    expect(connectedAt - started).to.be.below(10_000);
    expect(out).to.match(/^data plane: (NOOP|KERNEL)/m);
    expect(out).to.match(/path \(4 segments\)/);
    if (/^data plane: KERNEL/m.test(out)) expect(out).to.match(/ping \S+ from the client's netns over nsm-1: ok/);
    const dir = /starting a single-node mesh in (\S+)/.exec(out)?.[1] ?? "";
    expect(existsSync(dir), dir).to.equal(true);
    expect(new Set(pids).size, out).to.equal(5);

    const exited = once(c, "exit");
    c.kill("SIGINT");
    const [code, signal] = (await exited) as [number | null, NodeJS.Signals | null];
    expect({ code, signal }, out).to.deep.equal({ code: 0, signal: null });
    expect(out).to.match(/stopped cleanly/);
    expect(pids.filter(alive), "programs still running").to.deep.equal([]);
    expect(existsSync(dir), "temp dir removed").to.equal(false);
  });
});
