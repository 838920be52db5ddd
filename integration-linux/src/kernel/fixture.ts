/**
 * Test fixture for kernel tests: creates uniquely named namespaces, tracks helper processes, and removes
 * everything in `cleanup()` (called from afterEach, also after failures). Skips the suite with a one-line
 * reason when not root or when `ip netns add` does not work here.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { once } from "node:events";
import { createNamedNetns, deleteNamedNetns, type Netns, runCommand } from "@nsm-ts/sdk-linux";

/** Why kernel tests cannot run here, or undefined when they can. Probed once per process. */
let probe: Promise<string | undefined> | undefined;
export function kernelUnavailable(): Promise<string | undefined> {
  probe ??= (async () => {
    if (process.platform !== "linux") return `not Linux (${process.platform})`;
    if (process.getuid?.() !== 0) return "not root (kernel tests need root or CAP_NET_ADMIN+CAP_SYS_ADMIN)";
    for (const tool of [
      ["nsenter", "--version"],
      ["ping", "-V"],
    ]) {
      const r = await runCommand(tool).catch(() => undefined);
      if (r?.code !== 0) return `${tool[0]} is not installed`;
    }
    const name = `nsmts-probe-${randomBytes(3).toString("hex")}`;
    try {
      await createNamedNetns(name);
    } catch (err) {
      return `ip netns add fails here: ${(err as Error).message.split("\n")[0]}`;
    }
    await deleteNamedNetns(name);
    return undefined;
  })();
  return probe;
}

/** Skips the calling suite (use in `before`) with a one-line reason when namespaces are unavailable. */
export async function skipUnlessKernel(ctx: Mocha.Context): Promise<void> {
  const reason = await kernelUnavailable();
  if (reason !== undefined) {
    process.stderr.write(`      skipping kernel tests: ${reason}\n`);
    ctx.skip();
  }
}

/** Namespaces and processes created by one test. */
export class KernelFixture {
  readonly #names: string[] = [];
  readonly #children: ChildProcess[] = [];
  readonly #tag = randomBytes(3).toString("hex");

  /** Creates `nsmts-t-<random>-<suffix>` and returns its handle. */
  async netns(suffix: string): Promise<Netns> {
    const name = `nsmts-t-${this.#tag}-${suffix}`;
    this.#names.push(name);
    return createNamedNetns(name);
  }

  /** Names created so far (for leftover checks). */
  get names(): readonly string[] {
    return this.#names;
  }

  /** Starts a long-running process inside `ns` (to get a `/proc/<pid>/ns/net` path); killed in cleanup. */
  async holder(ns: Netns): Promise<number> {
    return this.holderIn(ns.path);
  }

  /** Starts a long-running process in a new, unnamed netns (unshare); killed in cleanup, which ends the netns. */
  async unnamedHolder(): Promise<number> {
    return this.#start(["unshare", "--net", "sh", "-c", "echo ready; exec sleep 300"]);
  }

  /** Starts a long-running process inside the netns at `path`; killed in cleanup. */
  async holderIn(path: string): Promise<number> {
    return this.#start(["nsenter", `--net=${path}`, "sh", "-c", "echo ready; exec sleep 300"]);
  }

  async #start(argv: [string, ...string[]]): Promise<number> {
    // The shell prints once it runs inside the namespace; `exec` keeps the same pid for sleep.
    const child = spawn(argv[0], argv.slice(1), { stdio: ["ignore", "pipe", "ignore"] });
    this.#children.push(child);
    const stdout = child.stdout;
    if (child.pid === undefined || stdout === null) throw new Error(`${argv[0]} did not start`);
    await once(stdout, "data");
    stdout.resume();
    return child.pid;
  }

  /** Kills a holder started by `holder` and waits for it to exit. */
  async kill(pid: number): Promise<void> {
    const child = this.#children.find((c) => c.pid === pid);
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = once(child, "exit");
    child.kill("SIGKILL");
    await exited;
  }

  /** Kills helper processes and deletes every namespace (and with it every link) this test created. */
  async cleanup(): Promise<void> {
    for (const c of this.#children) if (c.pid !== undefined) await this.kill(c.pid);
    for (const n of this.#names) await deleteNamedNetns(n);
    const left = (await runCommand(["ip", "netns", "list"])).stdout;
    const ours = this.#names.filter((n) => left.split("\n").some((l) => l.split(" ")[0] === n));
    if (ours.length > 0) throw new Error(`namespaces left behind: ${ours.join(", ")}`);
  }
}

/** Runs `ping -c1 -W1 <addr>` inside `ns`; true when a reply came back. */
export async function ping(ns: Netns, addr: string): Promise<boolean> {
  const r = await runCommand(ns.execArgv(["ping", "-c1", "-W1", "-n", addr]));
  return r.code === 0;
}
