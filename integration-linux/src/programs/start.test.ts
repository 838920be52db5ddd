/**
 * `npm start`: `node scripts/start.js` reaches a connected client within 10 s, and on SIGINT stops every program it
 * started, removes its temp directory and exits 0, also when the SIGINT comes twice at once (a terminal signals
 * npm and the script, and npm passes its copy on) and when it runs under `npm start` in a terminal's process
 * group. A SIGINT that comes later than NSM_START_FORCE_AFTER_MS kills everything (exit 1). It stops the mesh when
 * its parent (npm) dies without passing a signal on. Its ping step says when ping is not installed.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { expect } from "chai";
import { repoRoot } from "./harness.js";

interface PingResult {
  status: "ok" | "no reply" | "missing";
  rtt?: string;
  command?: string;
}
/** scripts/ping.js, plain JavaScript outside any workspace. */
interface PingModule {
  pingOnce(dst: string, opts?: { netns?: string; command?: string; env?: NodeJS.ProcessEnv }): Promise<PingResult>;
  describePing(result: PingResult): string;
  findCommand(command: string, path?: string): string | undefined;
}
const ping = (await import(pathToFileURL(join(repoRoot, "scripts", "ping.js")).href)) as PingModule;
const startJs = join(repoRoot, "scripts", "start.js");

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

/** Resolves with the output so far once `re` matches it (it may already), rejects if `c` exits first. */
function waitForOutput(c: ChildProcess, output: () => string, re: RegExp): Promise<string> {
  return new Promise((resolve, reject) => {
    const check = () => {
      if (!re.test(output())) return;
      c.stdout?.off("data", onData);
      c.off("exit", onExit);
      resolve(output());
    };
    // startMesh's listener, added earlier, has appended the chunk by now.
    const onData = () => check();
    const onExit = (code: number | null) => reject(new Error(`exited with ${code} before printing ${re}:\n${output()}`));
    c.stdout?.on("data", onData);
    c.once("exit", onExit);
    check();
  });
}

describe("npm start (scripts/start.js)", function () {
  this.timeout(60_000);
  let child: ChildProcess | undefined;
  let group = false;
  let pids: number[] = [];

  afterEach(async () => {
    if (child && child.exitCode === null && child.signalCode === null) {
      // SIGTERM first: the script stops the programs it started, also those it has not listed yet, and removes
      // its network namespaces, which SIGKILL would leave behind. SIGKILL only if it has not exited in 15 s.
      const c = child;
      const exited = once(c, "exit");
      const kill = (sig: NodeJS.Signals) => (group && c.pid !== undefined ? process.kill(-c.pid, sig) : c.kill(sig));
      kill("SIGTERM");
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([exited, new Promise<void>((r) => (timer = setTimeout(r, 15_000)))]);
      clearTimeout(timer);
      if (c.exitCode === null && c.signalCode === null) {
        kill("SIGKILL");
        await exited;
      }
    }
    // The programs run in their own process groups; nothing may outlive the test even when it failed.
    for (const pid of pids) if (alive(pid)) process.kill(pid, "SIGKILL");
    child = undefined;
    group = false;
    pids = [];
  });

  /**
   * Spawns `argv`, which runs start.js, and waits for the connection's details; `pids` are the script's and the
   * programs'. With `detached`, `argv` leads a process group of its own, as a terminal's foreground job does.
   */
  async function startMesh(
    argv: [string, ...string[]],
    opts: { env?: NodeJS.ProcessEnv; detached?: boolean; connectWithinMs?: number } = {},
  ): Promise<{ c: ChildProcess; output: () => string; dir: string; tookMs: number }> {
    const started = Date.now();
    const within = opts.connectWithinMs ?? 10_000;
    const c = spawn(argv[0], argv.slice(1), {
      cwd: repoRoot,
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, NSM_LOG_LEVEL: "INFO", ...opts.env },
      detached: opts.detached ?? false,
    });
    child = c;
    group = opts.detached ?? false;
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
      const timer = setTimeout(() => reject(new Error(`no "connected" line within ${within / 1000} s:\n${out}`)), within);
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

  /** The pid of the client program, from the script's list. */
  const nscPid = (output: string) => Number(/^ {2}nsc\s.*pid (\d+)$/m.exec(output)?.[1]);

  it("reaches a connected client within 10 s and stops cleanly (exit 0) on two SIGINTs in quick succession, as a terminal and npm send them", async () => {
    const { c, output, dir, tookMs } = await startMesh([process.execPath, startJs]);
    expect(tookMs).to.be.below(10_000);
    expect(output()).to.match(/^data plane: (NOOP|KERNEL)/m);
    expect(output()).to.match(/path \(4 segments\)/);
    if (/^data plane: KERNEL/m.test(output())) {
      const pingLine = /ping \S+ from the client's netns over nsm-1: .*/.exec(output())?.[0];
      if (ping.findCommand("ping") !== undefined) expect(pingLine).to.match(/: ok/);
      else expect(pingLine).to.match(/`ping` is not installed \(Debian: apt-get install iputils-ping\)$/);
    }

    // Two signals sent before the script handles the first would merge into one (the kernel keeps one pending
    // SIGINT), and a stop that ends before the second arrives would not show it: the client pauses until both are in.
    const nsc = nscPid(output());
    process.kill(nsc, "SIGSTOP");
    const exited = once(c, "exit");
    c.kill("SIGINT");
    await waitForOutput(c, output, /^Ctrl-C: stopping the mesh$/m);
    c.kill("SIGINT");
    await waitForOutput(c, output, /^SIGINT: already stopping$/m);
    process.kill(nsc, "SIGCONT");
    const [code, signal] = (await exited) as [number | null, NodeJS.Signals | null];
    expect({ code, signal }, output()).to.deep.equal({ code: 0, signal: null });
    expect(output()).to.match(/^ {2}nsc +exit 0$/m);
    expect(output()).to.match(/stopped cleanly/);
    expect(output()).not.to.match(/killing everything/);
    expect(pids.filter(alive), "programs still running").to.deep.equal([]);
    expect(existsSync(dir), "temp dir removed").to.equal(false);
  });

  it("stops cleanly under `npm start` on one Ctrl-C in a terminal (SIGINT to the whole process group), npm exits 0", async () => {
    // npm runs the build first, then execs the script; the terminal signals npm and the script, npm forwards its copy.
    const { c, output, dir } = await startMesh(["npm", "start"], {
      env: { NSM_START_DATAPLANE: "noop" },
      detached: true,
      connectWithinMs: 30_000,
    });
    const exited = once(c, "exit");
    process.kill(-(c.pid as number), "SIGINT");
    const [code, signal] = (await exited) as [number | null, NodeJS.Signals | null];
    expect({ code, signal }, output()).to.deep.equal({ code: 0, signal: null });
    expect(output()).to.match(/stopped cleanly/);
    expect(output()).not.to.match(/killing everything/);
    // npm exits once the script has; the programs are the script's, and it waits for them.
    expect(await gone(pids), "script and programs still running").to.deep.equal([]);
    expect(existsSync(dir), "temp dir removed").to.equal(false);
  });

  it("kills everything (exit 1) on a SIGINT that comes NSM_START_FORCE_AFTER_MS or more after the first", async () => {
    const forceAfterMs = 500;
    const { c, output, dir } = await startMesh([process.execPath, startJs], {
      env: { NSM_START_DATAPLANE: "noop", NSM_START_FORCE_AFTER_MS: String(forceAfterMs) },
    });
    // A client that hangs on SIGTERM keeps the stop going (the script would wait 8 s before SIGKILL).
    process.kill(nscPid(output()), "SIGSTOP");
    const exited = once(c, "exit");
    const firstAt = Date.now();
    c.kill("SIGINT");
    await waitForOutput(c, output, /^Ctrl-C: stopping the mesh$/m);
    c.kill("SIGINT"); // a copy within the window: ignored
    await waitForOutput(c, output, /^SIGINT: already stopping$/m);
    await waitForOutput(c, output, /^still stopping; press Ctrl-C again to kill everything$/m);
    expect(Date.now() - firstAt).to.be.at.least(forceAfterMs);
    c.kill("SIGINT");
    const [code, signal] = (await exited) as [number | null, NodeJS.Signals | null];
    expect({ code, signal }, output()).to.deep.equal({ code: 1, signal: null });
    expect(output()).to.match(/^SIGINT again: killing everything$/m);
    expect(output()).not.to.match(/stopped cleanly/);
    expect(await gone(pids), "programs still running").to.deep.equal([]);
    expect(existsSync(dir), "temp dir removed").to.equal(false);
  });

  it("stops the mesh when its parent dies without passing a signal on (npm killed outside a terminal)", async () => {
    // A shell that does not exec stands in for npm: the script is its child, and SIGKILL reaches only the shell.
    const { c, output, dir } = await startMesh(["sh", "-c", `"${process.execPath}" "${startJs}"; true`]);
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

describe("npm start's ping step (scripts/ping.js)", () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "nsm-ping-test-"));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  /** An executable shell script `name` in the temp dir. */
  function fake(name: string, body: string): string {
    const f = join(dir, name);
    writeFileSync(f, `#!/bin/sh\n${body}\n`);
    chmodSync(f, 0o755);
    return f;
  }

  it("says ping is not installed, and how to install it, when PATH has no ping (not 'no reply')", async () => {
    for (const netns of [undefined, "nsm-ping-test-no-such-netns"]) {
      const r = await ping.pingOnce("127.0.0.1", { netns, env: { ...process.env, PATH: dir } });
      expect(r, String(netns)).to.deep.equal({ status: "missing", command: "ping" });
      const line = ping.describePing(r);
      expect(line).to.match(/`ping` is not installed/);
      expect(line).to.match(/apt-get install iputils-ping/);
      expect(line).not.to.match(/no reply/);
    }
  });

  it("says so too for a command name that is nowhere, bare or as a path", async () => {
    expect(await ping.pingOnce("127.0.0.1", { command: "nsm-ts-no-such-ping" })).to.deep.equal({
      status: "missing",
      command: "nsm-ts-no-such-ping",
    });
    expect((await ping.pingOnce("127.0.0.1", { command: join(dir, "ping") })).status).to.equal("missing");
  });

  it("reports the round trip of a ping that got a reply, and 'no reply' for one that did not", async () => {
    fake("ping", 'echo "64 bytes from $5: icmp_seq=1 ttl=64 time=0.042 ms"');
    const ok = await ping.pingOnce("192.0.2.1", { env: { ...process.env, PATH: `${dir}:${process.env.PATH}` } });
    expect(ok).to.deep.equal({ status: "ok", rtt: "0.042 ms" });
    expect(ping.describePing(ok)).to.equal("ok (0.042 ms)");
    const lost = await ping.pingOnce("192.0.2.1", { command: fake("ping-lost", "exit 1") });
    expect(lost).to.deep.equal({ status: "no reply" });
    expect(ping.describePing(lost)).to.equal("no reply");
  });
});
