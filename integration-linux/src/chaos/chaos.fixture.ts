/**
 * The chaos suite's tools: the forked client process (`ChaosClient`, see chaos-client.ts), Prometheus scrapes of
 * the programs' /metrics, a process's RSS from /proc, and waiting on a condition by polling state.
 */
import { type ChildProcess, fork } from "node:child_process";
import { once } from "node:events";
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { Program } from "../programs/harness.js";
import type { ChaosCommand, ChaosReply, ChaosStatus } from "./chaos-client.js";

export type { ChaosStatus };

/** Distributes a command over the union without losing its variant. */
type Without<T, K extends keyof T> = T extends unknown ? Omit<T, K> : never;

/** The forked client process and its IPC commands. */
export class ChaosClient {
  private seq = 0;
  private readonly pending = new Map<number, { resolve: (r: ChaosReply) => void; reject: (e: Error) => void }>();
  private stderr = "";
  readonly exited: Promise<unknown>;

  private constructor(readonly child: ChildProcess) {
    this.exited = once(child, "exit");
    child.stderr?.setEncoding("utf8");
    child.stderr?.on("data", (s: string) => (this.stderr = (this.stderr + s).slice(-4000)));
    child.on("message", (r: ChaosReply) => {
      const p = this.pending.get(r.seq);
      this.pending.delete(r.seq);
      if (r.error !== undefined) p?.reject(new Error(`chaos client: ${r.error}`));
      else p?.resolve(r);
    });
    void this.exited.then(() => {
      for (const p of this.pending.values()) p.reject(new Error(`chaos client exited; stderr:\n${this.stderr}`));
      this.pending.clear();
    });
  }

  /** Forks the client against `connectTo` and waits until it is ready. */
  static async start(connectTo: string): Promise<ChaosClient> {
    const script = join(dirname(fileURLToPath(import.meta.url)), "chaos-client.js");
    const child = fork(script, [], {
      env: { ...process.env, CHAOS_CONNECT_TO: connectTo },
      stdio: ["ignore", "ignore", "pipe", "ipc"],
    });
    const c = new ChaosClient(child);
    const ready = new Promise<ChaosReply>((resolve, reject) => c.pending.set(0, { resolve, reject }));
    await ready;
    return c;
  }

  /** Sends `cmd` and resolves with the reply. */
  send(cmd: Without<ChaosCommand, "seq">): Promise<ChaosReply> {
    const seq = ++this.seq;
    return new Promise((resolve, reject) => {
      this.pending.set(seq, { resolve, reject });
      this.child.send({ ...cmd, seq });
    });
  }

  async status(): Promise<ChaosStatus> {
    const r = await this.send({ op: "status" });
    return r.status as ChaosStatus;
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Asks the client to dispose and exit; kills it if it has not exited within 10 s. */
  async stop(): Promise<void> {
    if (!this.running) return;
    const timer = setTimeout(() => this.child.kill("SIGKILL"), 10_000);
    await this.send({ op: "exit" }).catch(() => undefined);
    await this.exited;
    clearTimeout(timer);
  }
}

/** Prometheus text → `name{labels}` → value (labels sorted, `program` dropped). */
export function parseMetrics(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) continue;
    const labels = [...(m[2] ?? "").matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)]
      .filter((l) => l[1] !== "program")
      .map((l) => `${l[1]}="${l[2]}"`)
      .sort();
    out.set(labels.length ? `${m[1]}{${labels.join(",")}}` : (m[1] as string), Number(m[3]));
  }
  return out;
}

/** The values a chaos check reads from one program's /metrics. */
export interface Gauges {
  /** `nsm_active_connections`. */
  connections: number;
  /** `nsm_clock_timers_pending`. */
  timers: number;
  /** `nsm_registry_entries{kind="nse"}` (registry only). */
  nses: number;
  /** `nsm_grpc_server_streams_active` summed over methods (monitors, watches). */
  streams: number;
  /** `nsm_connection_refreshes_total`: Requests for connections the hop already had (refreshes, heals). */
  refreshes: number;
  /** `nsm_nodejs_heap_size_used_bytes` in MiB: live objects plus garbage not yet collected. */
  heapMiB: number;
  /** `nsm_nodejs_heap_size_total_bytes` in MiB: what V8 has committed for its heap, used or not. */
  heapTotalMiB: number;
}

/** Scrapes a program's /metrics (the `http://…/metrics` URL it logged). */
export async function gauges(url: string): Promise<Gauges> {
  const res = await fetch(url);
  const m = parseMetrics(await res.text());
  let streams = 0;
  for (const [k, v] of m) if (k.startsWith("nsm_grpc_server_streams_active")) streams += v;
  return {
    connections: m.get("nsm_active_connections") ?? 0,
    timers: m.get("nsm_clock_timers_pending") ?? 0,
    nses: m.get('nsm_registry_entries{kind="nse"}') ?? 0,
    streams,
    refreshes: m.get("nsm_connection_refreshes_total") ?? 0,
    heapMiB: (m.get("nsm_nodejs_heap_size_used_bytes") ?? 0) / 2 ** 20,
    heapTotalMiB: (m.get("nsm_nodejs_heap_size_total_bytes") ?? 0) / 2 ** 20,
  };
}

/** The /metrics URL a program logs at start-up (it needs `NSM_METRICS_LISTEN_ON`). */
export async function metricsUrl(p: Program): Promise<string> {
  return String((await p.waitFor("serving Prometheus metrics")).url);
}

/** VmRSS of `pid` in MiB (NaN when the process is gone). */
export function rssMiB(pid: number | undefined): number {
  try {
    const m = /VmRSS:\s+(\d+)\s+kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) / 1024 : Number.NaN;
  } catch {
    return Number.NaN;
  }
}

/** RSS of each process over a window: the peak and the mean of the samples, in MiB. */
export interface RssWindow {
  peak: number;
  mean: number;
}

/**
 * Samples the RSS of each of `pids` every `everyMs` for `windowMs`. A single reading of a V8 process under load
 * lands anywhere on its garbage-collection sawtooth (seen ±15 % within a minute at a constant 1,000 connections),
 * so footprints are compared by the peak over a window in which every major collection cycle repeats.
 */
export async function sampleRss(
  pids: Record<string, number | undefined>,
  windowMs: number,
  everyMs = 1_000,
): Promise<Record<string, RssWindow>> {
  const samples: Record<string, number[]> = Object.fromEntries(Object.keys(pids).map((k) => [k, []]));
  for (const end = Date.now() + windowMs; ; ) {
    for (const [k, pid] of Object.entries(pids)) samples[k]?.push(rssMiB(pid));
    if (Date.now() >= end) break;
    await new Promise((r) => setTimeout(r, everyMs));
  }
  return Object.fromEntries(
    Object.entries(samples).map(([k, v]) => [k, { peak: Math.max(...v), mean: v.reduce((a, b) => a + b, 0) / v.length }]),
  );
}

/**
 * The value most of `samples` agree on (the higher one on a tie). A single reading of
 * `nsm_clock_timers_pending` can miss a timer for a moment: a registration refresh holds none while its Register
 * is in flight (a CI run read the endpoint's 1,001 as 1,000 once, and then waited in vain for the restarted
 * endpoint to come down to it), so a program's resting level is what it reports most of the time.
 */
export function resting(samples: readonly number[]): number {
  const counts = new Map<number, number>();
  for (const v of samples) counts.set(v, (counts.get(v) ?? 0) + 1);
  let best = Number.NaN;
  let most = 0;
  for (const [v, n] of counts) {
    if (n > most || (n === most && v > best)) {
      best = v;
      most = n;
    }
  }
  return best;
}

/**
 * Reads `read` `samples` times, `everyMs` apart, and returns each key's resting value (see `resting`).
 */
export async function restingLevels<K extends string>(
  read: () => Promise<Record<K, number>>,
  samples: number,
  everyMs: number,
): Promise<Record<K, number>> {
  const seen = new Map<K, number[]>();
  for (let i = 0; i < samples; i++) {
    if (i > 0) await new Promise((r) => setTimeout(r, everyMs));
    for (const [k, v] of Object.entries(await read()) as [K, number][]) {
      const list = seen.get(k);
      if (list === undefined) seen.set(k, [v]);
      else list.push(v);
    }
  }
  return Object.fromEntries([...seen].map(([k, v]) => [k, resting(v)])) as Record<K, number>;
}

/** User + system CPU time of `pid` in seconds (NaN when the process is gone). */
export function cpuSeconds(pid: number | undefined): number {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]?.split(" ") ?? [];
    // utime and stime are fields 14 and 15 of stat, 12 and 13 after "pid (comm) ".
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return Number.NaN;
  }
}

/**
 * Polls `check` every `everyMs` until it returns a value other than undefined; rejects after `timeoutMs` with
 * `what` and the last thing `describe` says about the state.
 */
export async function until<T>(
  what: string,
  check: () => Promise<T | undefined>,
  opts: { timeoutMs: number; everyMs?: number; describe?: () => Promise<string> },
): Promise<T> {
  const end = Date.now() + opts.timeoutMs;
  for (;;) {
    const v = await check();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting until ${what}${opts.describe ? `: ${await opts.describe()}` : ""}`);
    await new Promise((r) => setTimeout(r, opts.everyMs ?? 200));
  }
}
