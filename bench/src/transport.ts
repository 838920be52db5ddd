/**
 * Transport: our typed gRPC layer (`@nsm-ts/base/grpc`) against raw `@grpc/grpc-js` with the very same
 * protobuf-es serialisers, in the same run, over TCP loopback with NSM-sized messages (a Connection with a
 * four-hop path and JWT-sized tokens). Measures unary latency (1 in flight, p50/p99), unary throughput (64 in
 * flight) and a 10k-message server stream, interleaving the stacks (call by call, slice by slice, stream by
 * stream) so that the load of a shared machine hits both alike; CPU time per call is reported too.
 * Servers run in a child process (so client and server do not share one event loop). The stacks are in
 * transport/stacks.ts, the measurements in transport/measure.ts.
 * Run: `npx tsc -b bench && node bench/dist/transport.js` (about 20 s on an idle 2-core machine, < 1 min loaded).
 */
import { type ChildProcess, fork } from "node:child_process";
import { readFileSync } from "node:fs";
import { cpus, loadavg } from "node:os";
import { create, toBinary } from "@bufbuild/protobuf";
import { NetworkServiceRequestSchema } from "@nsm-ts/api/networkservice";
import { IN_FLIGHT, inProcessCpu, latency, median, pct, streamOnce, throughput } from "./transport/measure.js";
import { nsmConnection, ourStack, rawStack, STREAM_MESSAGES, serve } from "./transport/stacks.js";

/** Options of the transport bench. */
export interface TransportBenchOptions {
  /** Interleaved sequential calls, ms. Default 4000. */
  latencyMs?: number;
  /** Number of alternating 64-in-flight slices (half per stack). Default 12. */
  slices?: number;
  /** Length of one slice, ms. Default 400. */
  sliceMs?: number;
  /** Streams per stack, alternating. Default 3. */
  streams?: number;
}

/** Measures both stacks, interleaved; returns markdown lines for bench/RESULTS.md. */
export async function runTransportBench(opts: TransportBenchOptions = {}): Promise<string[]> {
  const { latencyMs = 4000, slices = 12, sliceMs = 400, streams = 3 } = opts;
  const child: ChildProcess = fork(new URL(import.meta.url).pathname, ["--serve"], { stdio: ["ignore", "inherit", "inherit", "ipc"] });
  try {
    const addr = await new Promise<{ ours: string; raw: string }>((resolve, reject) => {
      child.once("message", (m) => resolve(m as { ours: string; raw: string }));
      child.once("exit", (code) => reject(new Error(`transport bench server exited (${code})`)));
    });
    const stacks = [rawStack(addr.raw), ourStack(addr.ours)] as const;
    const req = create(NetworkServiceRequestSchema, {
      connection: nsmConnection(),
      mechanismPreferences: [{ cls: "LOCAL", type: "KERNEL" }],
    });
    const bytes = toBinary(NetworkServiceRequestSchema, req).length;
    // Warm-up: connect, JIT.
    await latency(stacks, req, 500);
    await throughput(stacks, req, 2, 200, child);
    for (const s of stacks) await streamOnce(s, child);

    const load0 = loadavg()[0] ?? 0;
    const t0 = performance.now();
    const lat = await latency(stacks, req, latencyMs);
    const tput = await throughput(stacks, req, slices, sliceMs, child);
    const str: Array<Array<{ ms: number; cpuUs: number }>> = [[], []];
    // Bounded: streams stop after 15 s (at least one per stack), so the bench stays near a minute when loaded.
    const streamStop = performance.now() + 15_000;
    for (let k = 0; k < streams && (k === 0 || performance.now() < streamStop); k++) {
      // Alternate who goes first so a change in load hits both alike.
      const order = k % 2 === 0 ? [0, 1] : [1, 0];
      for (const i of order) {
        const s = stacks[i as 0 | 1];
        str[i]?.push(await streamOnce(s, child));
      }
    }
    for (const s of stacks) s.close();
    const inProc = await inProcessCpu(req, t0 + 40_000);
    const wallS = (performance.now() - t0) / 1000;
    const load1 = loadavg()[0] ?? 0;

    const at = <T>(xs: readonly T[], i: number): T => {
      const x = xs[i];
      if (x === undefined) throw new Error("transport bench: missing sample");
      return x;
    };
    const stat = (i: number) => {
      const l = at(lat, i);
      const t = at(tput, i);
      const st = at(str, i);
      return {
        calls: l.length,
        p50: pct(l, 50),
        p99: pct(l, 99),
        tput: (t.calls / t.ms) * 1000,
        cpuCall: t.cpuUs / t.calls,
        stream: median(st.map((x) => x.ms)),
        cpuStream: median(st.map((x) => x.cpuUs / 1000)),
      };
    };
    const r = stat(0);
    const o = stat(1);
    const row = (name: string, x: typeof r): string =>
      `| ${name} | ${x.p50.toFixed(3)} | ${x.p99.toFixed(3)} | ${x.tput.toFixed(0)} | ${x.cpuCall.toFixed(0)} | ${x.stream.toFixed(0)} | ${x.cpuStream.toFixed(0)} |`;
    const q = (a: number, b: number): string => (a / b).toFixed(2);
    const model = readFileSync("/proc/cpuinfo", "utf8").match(/model name\s*:\s*(.*)/)?.[1] ?? cpus()[0]?.model ?? "unknown";
    return [
      `Machine: ${model}, nproc ${cpus().length}, node ${process.version}; load average ${load0.toFixed(1)} → ${load1.toFixed(1)}; ${wallS.toFixed(0)} s measuring.`,
      "",
      `Request ${bytes} bytes (NetworkServiceRequest with a 4-hop Connection), response the Connection; stream messages are`,
      "ConnectionEvents carrying that Connection. Servers in a child process, clients in the bench process, TCP loopback.",
      `Latency: ${r.calls} sequential calls per stack, interleaved call by call. Throughput: ${slices} alternating slices of`,
      `${sliceMs} ms with ${IN_FLIGHT} calls in flight. Stream: ${str[0]?.length ?? 0} × ${STREAM_MESSAGES} messages per stack, alternating, median.`,
      "CPU = user + system of client and server processes together.",
      "",
      `| stack | unary p50 ms | unary p99 ms | calls/s (${IN_FLIGHT} in flight) | CPU µs/call | ${STREAM_MESSAGES / 1000}k stream ms | stream CPU ms |`,
      "|---|---|---|---|---|---|---|",
      row("raw grpc-js + protobuf-es serialisers", r),
      row("our typed layer (sdk/tools/grpc)", o),
      `| **ratio ours / raw** | ${q(o.p50, r.p50)} | ${q(o.p99, r.p99)} | ${q(o.tput, r.tput)} | ${q(o.cpuCall, r.cpuCall)} | ${q(o.stream, r.stream)} | ${q(o.cpuStream, r.cpuStream)} |`,
      "",
      `In one process (client and server together), median CPU over ${inProc.rounds} alternating rounds of 400 calls`,
      `(32 in flight) and one ${STREAM_MESSAGES / 1000}k stream per stack:`,
      "",
      `| stack (in one process) | CPU µs/call | CPU ms per ${STREAM_MESSAGES / 1000}k stream |`,
      "|---|---|---|",
      ...inProc.rows.map(([name, u, st]) => `| ${name} | ${u.toFixed(0)} | ${st.toFixed(0)} |`),
      ...(() => {
        const base = inProc.rows[0];
        const ours = inProc.rows[1];
        return base && ours ? [`| **ratio ours / raw** | ${q(ours[1], base[1])} | ${q(ours[2], base[2])} |`] : [];
      })(),
    ];
  } finally {
    child.disconnect();
  }
}

if (process.argv.includes("--serve")) {
  await serve();
} else if (process.argv[1]?.endsWith("transport.js")) {
  const lines = await runTransportBench();
  process.stdout.write(`${lines.join("\n")}\n`);
}
