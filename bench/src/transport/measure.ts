/**
 * How the transport bench measures two stacks alike: interleaved latency, alternating throughput slices,
 * whole streams, CPU time of both processes, and CPU cost with client and server in one process.
 */
import type { ChildProcess } from "node:child_process";
import type { NetworkServiceRequest } from "@nsm-ts/api/networkservice";
import { ourStack, rawStack, STREAM_MESSAGES, type Stack, startServers } from "./stacks.js";

/** Calls in flight in a throughput slice. */
export const IN_FLIGHT = 64;

/** The `p`th percentile of sorted samples (nearest rank). */
export function pct(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] ?? Number.NaN;
}
/** The median of unsorted samples. */
export const median = (xs: number[]): number =>
  pct(
    [...xs].sort((a, b) => a - b),
    50,
  );

/**
 * Unary latency with the stacks interleaved call by call for `ms`, so both see the same machine load;
 * returns sorted latencies per stack.
 */
export async function latency(stacks: readonly Stack[], req: NetworkServiceRequest, ms: number): Promise<number[][]> {
  const out: number[][] = stacks.map(() => []);
  const stop = performance.now() + ms;
  while (performance.now() < stop) {
    for (const [i, s] of stacks.entries()) {
      const t = performance.now();
      await s.unary(req);
      out[i]?.push(performance.now() - t);
    }
  }
  return out.map((xs) => xs.sort((a, b) => a - b));
}

/** Runs IN_FLIGHT concurrent callers for `ms`; returns the number of completed calls. */
async function burst(s: Stack, req: NetworkServiceRequest, ms: number): Promise<number> {
  let done = 0;
  const stop = performance.now() + ms;
  const worker = async (): Promise<void> => {
    while (performance.now() < stop) {
      await s.unary(req);
      done++;
    }
  };
  await Promise.all(Array.from({ length: IN_FLIGHT }, worker));
  return done;
}

interface Totals {
  calls: number;
  ms: number;
  cpuUs: number;
}

/** Throughput in alternating slices of `sliceMs`; per stack: calls, wall ms and CPU µs summed over its slices. */
export async function throughput(
  stacks: readonly Stack[],
  req: NetworkServiceRequest,
  slices: number,
  sliceMs: number,
  child: ChildProcess,
): Promise<Totals[]> {
  const out = stacks.map(() => ({ calls: 0, ms: 0, cpuUs: 0 }));
  for (let k = 0; k < slices; k++) {
    const i = k % stacks.length;
    const s = stacks[i];
    const o = out[i];
    if (!s || !o) continue;
    const c0 = await cpuNow(child);
    const t0 = performance.now();
    o.calls += await burst(s, req, sliceMs);
    o.ms += performance.now() - t0;
    o.cpuUs += (await cpuNow(child)) - c0;
  }
  return out;
}

/** One full stream; returns wall ms and CPU µs. */
export async function streamOnce(s: Stack, child: ChildProcess): Promise<{ ms: number; cpuUs: number }> {
  const c0 = await cpuNow(child);
  const t = performance.now();
  const n = await s.stream();
  const ms = performance.now() - t;
  if (n !== STREAM_MESSAGES) throw new Error(`${s.name}: stream delivered ${n} messages`);
  return { ms, cpuUs: (await cpuNow(child)) - c0 };
}

/** CPU time (user + system, µs) used so far by this process and the server child. */
function cpuNow(child: ChildProcess): Promise<number> {
  return new Promise((resolve) => {
    const onMsg = (m: unknown): void => {
      const cpu = (m as { cpu?: NodeJS.CpuUsage }).cpu;
      if (!cpu) return;
      child.off("message", onMsg);
      const own = process.cpuUsage();
      resolve(own.user + own.system + cpu.user + cpu.system);
    };
    child.on("message", onMsg);
    child.send("cpu");
  });
}

/**
 * CPU cost with client and server in this one process, raw and ours in alternating rounds; CPU time is
 * less disturbed by a shared machine than wall time. Returns median CPU per unary call (µs, 32 in flight)
 * and per 10k stream (ms) for each stack.
 */
export async function inProcessCpu(
  req: NetworkServiceRequest,
  stopAt: number,
): Promise<{ rounds: number; rows: Array<[string, number, number]> }> {
  const servers = await startServers();
  const pairs: Array<[string, Stack]> = [
    ["raw grpc-js client → raw grpc-js server", rawStack(servers.raw)],
    ["our client → our server", ourStack(servers.ours)],
  ];
  const calls = 400;
  const unary = async (s: Stack): Promise<void> => {
    let i = 0;
    await Promise.all(
      Array.from({ length: 32 }, async () => {
        while (i++ < calls) await s.unary(req);
      }),
    );
  };
  const cpu = (): number => {
    const u = process.cpuUsage();
    return u.user + u.system;
  };
  for (const [, s] of pairs) await unary(s); // warm-up (the streams were warmed up by the main phase)
  const samples = pairs.map(() => ({ unary: [] as number[], stream: [] as number[] }));
  let rounds = 0;
  for (; rounds < 8 && (rounds < 2 || performance.now() < stopAt); rounds++) {
    for (const [i, [, s]] of pairs.entries()) {
      const c0 = cpu();
      await unary(s);
      const c1 = cpu();
      await s.stream();
      const c2 = cpu();
      samples[i]?.unary.push((c1 - c0) / calls);
      samples[i]?.stream.push((c2 - c1) / 1000);
    }
  }
  for (const [, s] of pairs) s.close();
  await servers.close();
  return { rounds, rows: pairs.map(([name], i) => [name, median(samples[i]?.unary ?? []), median(samples[i]?.stream ?? [])]) };
}
