/**
 * Program processes for the benchmarks that run the real programs: spawn (optionally inside a named netns), wait
 * for a ready line, stop, and kill whatever is left; plus the percentile helpers the tables use and `pool`, a map
 * with a bounded number of calls in flight.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

/** The repository root (bench/dist/lib → ../../..). */
export const repoRoot = join(fileURLToPath(new URL(".", import.meta.url)), "..", "..", "..");

const children = new Set<ChildProcess>();

/** Options of {@link startProcess}. */
export interface StartOptions {
  /** Run inside this named network namespace (`ip netns exec`, which execs: the pid is the program's). */
  netns?: string;
  /** Called with every stdout line (pino JSON for the programs). */
  onLine?: (line: string) => void;
  /** Options for node itself, before the script (e.g. `--cpu-prof`). */
  nodeArgs?: string[];
}

/** Spawns `node <args>` and resolves once a stdout line contains `ready` (a log msg or a relay's "ready"). */
export function startProcess(args: string[], env: Record<string, string>, ready: string, opts: StartOptions = {}): Promise<ChildProcess> {
  const base: NodeJS.ProcessEnv = { ...process.env };
  for (const k of Object.keys(base)) if (k.startsWith("NSM_")) delete base[k];
  const node = [process.execPath, ...(opts.nodeArgs ?? []), ...args];
  const cmd = opts.netns === undefined ? node : ["ip", "netns", "exec", opts.netns, ...node];
  const child = spawn(cmd[0] as string, cmd.slice(1), {
    env: { ...base, NSM_LOG_LEVEL: "WARN", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  children.add(child);
  child.once("exit", () => children.delete(child));
  let out = "";
  let partial = "";
  return new Promise((resolve, reject) => {
    child.stdout?.setEncoding("utf8").on("data", (s: string) => {
      out = (out + s).slice(-20_000);
      if (opts.onLine) {
        const lines = (partial + s).split("\n");
        partial = lines.pop() ?? "";
        for (const l of lines) opts.onLine(l);
      }
      if (out.includes(ready)) resolve(child);
    });
    child.stderr?.setEncoding("utf8").on("data", (s: string) => (out = (out + s).slice(-20_000)));
    child.once("exit", (code) => reject(new Error(`${args.join(" ")} exited ${code}: ${out.slice(-2000)}`)));
  });
}

/** Starts program `name` (`<name>/bin/<name>.js`) and waits for its ready log message. */
export function program(name: string, env: Record<string, string>, ready: string, opts: StartOptions = {}): Promise<ChildProcess> {
  // INFO would cost every hop a log line per request; the ready message is logged at info, so wait for it there.
  return startProcess([join(repoRoot, name, "bin", `${name}.js`)], { NSM_LOG_LEVEL: "INFO", ...env }, ready, opts);
}

/** Signals `c` and waits for its exit (no-op when it already exited). */
export async function stop(c: ChildProcess, signal: NodeJS.Signals = "SIGTERM"): Promise<void> {
  if (c.exitCode !== null || c.signalCode !== null) return;
  const exited = once(c, "exit");
  c.kill(signal);
  await exited;
}

/** SIGKILLs every process started here that still runs. */
export async function stopAll(): Promise<void> {
  await Promise.all([...children].map((c) => stop(c, "SIGKILL")));
}

function pct(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN;
}

/** p50 and p99 of a sample. */
export interface Stats {
  p50: number;
  p99: number;
}

/** {@link Stats} of `samples`. */
export function stats(samples: number[]): Stats {
  const s = [...samples].sort((a, b) => a - b);
  return { p50: pct(s, 50), p99: pct(s, 99) };
}

/** `v` as "12.34 ms". */
export const ms = (v: number): string => `${v.toFixed(2)} ms`;

/** Runs `fn` over `items` with `inFlight` at a time. */
export async function pool<T, R>(items: readonly T[], inFlight: number, fn: (t: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    for (let i = next++; i < items.length; i = next++) out[i] = await fn(items[i] as T);
  };
  await Promise.all(Array.from({ length: inFlight }, worker));
  return out;
}
