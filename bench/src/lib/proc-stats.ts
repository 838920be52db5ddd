/**
 * What the benchmarks read about a running program: its CPU time and resident memory from /proc, and its
 * Prometheus metrics.
 */
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";

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

/** Reads a program's Prometheus text at `url` (http://host:port/metrics) into name → value (labels dropped, the values of one name summed). */
export async function scrape(url: string): Promise<Map<string, number>> {
  const text = await (await fetch(url)).text();
  const out = new Map<string, number>();
  for (const line of text.split("\n")) {
    if (line.startsWith("#") || line === "") continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{[^}]*\})?\s+(\S+)/.exec(line);
    if (m?.[1] !== undefined) out.set(m[1], (out.get(m[1]) ?? 0) + Number(m[2]));
  }
  return out;
}
