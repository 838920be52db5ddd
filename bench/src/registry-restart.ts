/**
 * The etcd registry's restart alone: `count` NSEs seeded into a private etcd, then `rounds` times the bare paged
 * range of every key (baseline) and a new store loading at start until its first Find, each with the process's CPU
 * time. Prints the first Find and its CPU over the bare paged range of the same round, so the ratios hold on a busy
 * machine. `node bench/dist/registry-restart.js [count=100000] [rounds=3]`. Under `--cpu-prof`, set
 * BENCH_PROFILE_WINDOWS=1 to print each load's time window (monotonic µs, the profile's clock) on stderr, to cut the
 * seeding out of the profile.
 */
import { existsSync } from "node:fs";
import { loadavg } from "node:os";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { toBinary } from "@bufbuild/protobuf";
import { NetworkServiceEndpointSchema } from "@nsm-ts/api/registry";
import { createEtcdStore } from "@nsm-ts/sdk/registry";
import { etcdAvailable, seedEtcd, startEtcd } from "@nsm-ts/testing/etcd";
import { bareRange, byLabel, cpuMs, endpoint } from "./registry.js";

/** A new store loading at start until its first Find (by label) is answered: wall and CPU ms, longest stall. */
async function restart(endpoints: string[], count: number): Promise<{ ms: number; cpu: number; stall: number }> {
  const loop = monitorEventLoopDelay({ resolution: 10 });
  loop.enable();
  const start = performance.now();
  const cpu0 = cpuMs();
  const store = createEtcdStore("nse", { endpoints, prefix: "/bench/", loadAtStart: true });
  try {
    let n = 0;
    for await (const _ of store.find(byLabel(7), { watch: false, signal: new AbortController().signal })) n++;
    if (n !== count / 1000) throw new Error(`first Find: ${n} entries, expected ${count / 1000}`);
    const took = { ms: performance.now() - start, cpu: cpuMs() - cpu0 };
    loop.disable();
    return { ...took, stall: loop.max / 1e6 };
  } finally {
    await store.close();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const count = Number(process.argv[2] ?? 100_000);
  const rounds = Number(process.argv[3] ?? 3);
  const check = etcdAvailable();
  if (!check.available) {
    process.stdout.write(`skipped: ${check.reason}\n`);
    process.exit(0);
  }
  const tmpDir = existsSync("/dev/shm") ? "/dev/shm" : undefined;
  const etcd = await startEtcd({ heartbeatIntervalMs: 100, electionTimeoutMs: 1000, ...(tmpDir ? { tmpDir } : {}) });
  try {
    await seedEtcd(
      etcd.endpoints,
      (function* () {
        for (let i = 0; i < count; i++) yield [`/bench/nse/nse-${i}`, toBinary(NetworkServiceEndpointSchema, endpoint(i))] as const;
      })(),
    );
    for (let r = 0; r < rounds; r++) {
      const raw = await bareRange(etcd.endpoints);
      const t0 = process.hrtime.bigint() / 1000n;
      const first = await restart(etcd.endpoints, count);
      // The load's window on the profile's clock (monotonic µs), to cut a `--cpu-prof` profile to the loads.
      if (process.env.BENCH_PROFILE_WINDOWS) process.stderr.write(`window ${t0} ${process.hrtime.bigint() / 1000n}\n`);
      const load = loadavg()[0]?.toFixed(1);
      process.stdout.write(
        `round ${r + 1}: bare paged range ${raw.ms.toFixed(0)} ms (cpu ${raw.cpu.toFixed(0)} ms, ${raw.keys} keys); ` +
          `first Find ${first.ms.toFixed(0)} ms (cpu ${first.cpu.toFixed(0)} ms) = ${(first.ms / raw.ms).toFixed(2)}x, ` +
          `cpu ${(first.cpu / raw.ms).toFixed(2)}x the range's wall time; longest stall ${first.stall.toFixed(0)} ms; load ${load}\n`,
      );
    }
  } finally {
    await etcd.stop();
  }
}
