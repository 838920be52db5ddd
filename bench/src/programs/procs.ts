/**
 * Shared by the benchmarks that run the programs as processes (scale, hops): start a program and wait for its
 * ready line, stop it, and read its CPU time and resident memory from /proc.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { once } from "node:events";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

/** The repository root (bench/dist/programs → ../../..). */
export const repoRoot = join(fileURLToPath(new URL(".", import.meta.url)), "..", "..", "..");

const children = new Set<ChildProcess>();

/** Spawns `node [nodeArgs] <args>` and resolves once its output contains `ready`. */
export function startProcess(args: string[], env: Record<string, string>, ready: string, nodeArgs: string[] = []): Promise<ChildProcess> {
  const base: NodeJS.ProcessEnv = { ...process.env };
  for (const k of Object.keys(base)) if (k.startsWith("NSM_")) delete base[k];
  const child = spawn(process.execPath, [...nodeArgs, ...args], {
    env: { ...base, NSM_LOG_LEVEL: "WARN", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  children.add(child);
  child.once("exit", () => children.delete(child));
  let out = "";
  return new Promise((resolve, reject) => {
    const onData = (s: string): void => {
      if (out.length < 1_000_000) out += s;
      if (out.includes(ready)) resolve(child);
    };
    child.stdout?.setEncoding("utf8").on("data", onData);
    child.stderr?.setEncoding("utf8").on("data", onData);
    child.once("exit", (code) => reject(new Error(`${args.join(" ")} exited ${code}: ${out.slice(-2000)}`)));
  });
}

/** Starts program `name` (e.g. `cmd-nsmgr`) with `env`; resolves once it logged `"<name> serving"`. */
export function program(name: string, env: Record<string, string>, nodeArgs: string[] = []): Promise<ChildProcess> {
  // The ready message is logged at info; every other line at info would cost a hop a log line per request, and the
  // programs log per-request lines at debug only.
  return startProcess([join(repoRoot, name, "bin", `${name}.js`)], { NSM_LOG_LEVEL: "INFO", ...env }, `"${name} serving"`, nodeArgs);
}

/** Sends `signal` and waits for the exit. */
export async function stop(c: ChildProcess, signal: NodeJS.Signals = "SIGTERM"): Promise<void> {
  if (c.exitCode !== null || c.signalCode !== null) return;
  const exited = once(c, "exit");
  c.kill(signal);
  await exited;
}

/** Kills every process started here. */
export async function stopAll(): Promise<void> {
  await Promise.all([...children].map((c) => stop(c, "SIGKILL")));
}

let ticks: number | undefined;
/** Clock ticks per second of /proc/<pid>/stat times. */
function clockTicks(): number {
  ticks ??= Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;
  return ticks;
}

/** CPU time (user + system, ms) a process has used so far. */
export function cpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  // Fields after the command name (which may hold spaces) start at ") ": state is field 3, utime 14, stime 15.
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return ((Number(f[11]) + Number(f[12])) * 1000) / clockTicks();
}

/** Resident memory (bytes) of a process now. */
export function rssBytes(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return Number(m?.[1] ?? 0) * 1024;
}

/** Reads a program's Prometheus text at `url` (http://host:port/metrics) into name → value (labels dropped, last wins). */
export async function scrape(url: string): Promise<Map<string, number>> {
  const text = await (await fetch(url)).text();
  const out = new Map<string, number>();
  for (const line of text.split("\n")) {
    if (line.startsWith("#") || line === "") continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{[^}]*\})?\s+(\S+)/.exec(line);
    if (m?.[1] !== undefined) out.set(m[1], Number(m[2]));
  }
  return out;
}
