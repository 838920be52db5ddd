/**
 * Transport: our typed gRPC layer (`@nsm-ts/base/grpc`) against raw `@grpc/grpc-js` with the very same
 * protobuf-es serialisers, in the same run, over TCP loopback with NSM-sized messages (a Connection with a
 * four-hop path and JWT-sized tokens). Measures unary latency (1 in flight, p50/p99), unary throughput (64 in
 * flight) and a 10k-message server stream, interleaving the stacks (call by call, slice by slice, stream by
 * stream) so that the load of a shared machine hits both alike; CPU time per call is reported too.
 * Servers run in a child process (so client and server do not share one event loop).
 * Run: `npx tsc -b bench && node bench/dist/transport.js` (about 20 s on an idle 2-core machine, < 1 min loaded).
 */
import { type ChildProcess, fork } from "node:child_process";
import { readFileSync } from "node:fs";
import { cpus, loadavg } from "node:os";
import { create, type Message, toBinary } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import * as grpc from "@grpc/grpc-js";
import {
  type Connection,
  ConnectionEventSchema,
  ConnectionSchema,
  MonitorConnection,
  MonitorScopeSelectorSchema,
  NetworkService,
  type NetworkServiceRequest,
  NetworkServiceRequestSchema,
  State,
} from "@nsm-ts/api/networkservice";
import { createClient, createServer, dial, grpcServiceDefinition } from "@nsm-ts/base/grpc";

const STREAM_MESSAGES = 10_000;
const IN_FLIGHT = 64;

/** An NSM-sized Connection: 4 path segments with ~400-byte tokens, kernel mechanism, IP context. */
function nsmConnection(): Connection {
  const token = `eyJhbGciOiJFUzI1NiJ9.${"x".repeat(300)}.${"s".repeat(86)}`;
  return create(ConnectionSchema, {
    id: "3f2c9a3e-8d4b-4f7e-9a55-1c2d3e4f5a6b",
    networkService: "icmp-responder",
    mechanism: { cls: "LOCAL", type: "KERNEL", parameters: { inodeURL: "file:///proc/4242/ns/net", name: "icmp-resp-Ab3x" } },
    context: {
      ipContext: {
        srcIpAddrs: ["169.254.0.1/32"],
        dstIpAddrs: ["169.254.0.2/32"],
        srcRoutes: [{ prefix: "169.254.0.2/32" }],
        dstRoutes: [{ prefix: "169.254.0.1/32" }],
        excludedPrefixes: ["10.96.0.0/12", "10.244.0.0/16"],
      },
      MTU: 1446,
    },
    labels: { nodeName: "node-1", podName: "nsc-kernel-5d9c8", clusterName: "c1" },
    path: {
      index: 3,
      pathSegments: ["nsc", "nsmgr-1", "forwarder-1", "nse"].map((name, i) => ({
        name,
        id: `3f2c9a3e-8d4b-4f7e-9a55-1c2d3e4f5a6${i}`,
        token,
        expires: timestampFromMs(Date.now() + 600_000),
        metrics: (i === 2 ? { client_interface: "KERNEL/nsm-1", server_interface: "KERNEL/nsm-2" } : {}) as Record<string, string>,
      })),
    },
    networkServiceEndpointName: "nse-icmp-1",
    payload: "IP",
    state: State.UP,
  });
}

const nsDef = grpcServiceDefinition(NetworkService);
const monDef = grpcServiceDefinition(MonitorConnection);

/** Both servers: ours and raw grpc-js, each serving Request/Close and a 10k-message MonitorConnections. */
async function startServers(): Promise<{ ours: string; raw: string; close(): Promise<void> }> {
  const event = create(ConnectionEventSchema, { type: 1, connections: { c: nsmConnection() } });

  const ours = createServer();
  ours.addService(NetworkService, {
    request: async (req) => req.connection ?? {},
    close: async () => ({}),
  });
  ours.addService(MonitorConnection, {
    async *monitorConnections() {
      for (let i = 0; i < STREAM_MESSAGES; i++) yield event;
    },
  });
  const oursUrl = await ours.listen("tcp://127.0.0.1:0");

  const raw = new grpc.Server();
  raw.addService(nsDef, {
    request: (call: grpc.ServerUnaryCall<NetworkServiceRequest, Connection>, cb: grpc.sendUnaryData<Connection>) =>
      cb(null, call.request.connection ?? create(ConnectionSchema)),
    close: (_call: grpc.ServerUnaryCall<Connection, Message>, cb: grpc.sendUnaryData<Message>) => cb(null, create(ConnectionSchema)),
  });
  raw.addService(monDef, {
    monitorConnections: async (call: grpc.ServerWritableStream<Message, Message>) => {
      for (let i = 0; i < STREAM_MESSAGES; i++) {
        if (!call.write(event)) await new Promise((r) => call.once("drain", r));
      }
      call.end();
    },
  });
  const rawPort = await new Promise<number>((resolve, reject) =>
    raw.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  return {
    ours: oursUrl,
    raw: `127.0.0.1:${rawPort}`,
    close: async () => {
      raw.forceShutdown();
      await ours.close({ graceMs: 0 });
    },
  };
}

/** Child process: serve both stacks and report their addresses on IPC. */
async function serve(): Promise<void> {
  const servers = await startServers();
  process.on("message", (m) => {
    if (m === "cpu") process.send?.({ cpu: process.cpuUsage() });
  });
  process.send?.({ ours: servers.ours, raw: servers.raw });
  process.on("disconnect", () => {
    void servers.close().then(() => process.exit(0));
  });
}

/**
 * CPU cost with client and server in this one process, raw and ours in alternating rounds; CPU time is
 * less disturbed by a shared machine than wall time. Returns median CPU per unary call (µs, 32 in flight)
 * and per 10k stream (ms) for each stack.
 */
async function inProcessCpu(
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

/** One stack as the bench drives it. */
interface Stack {
  name: string;
  unary(req: NetworkServiceRequest): Promise<unknown>;
  stream(): Promise<number>;
  close(): void;
}

function ourStack(url: string): Stack {
  const channel = dial(url);
  const ns = createClient(NetworkService, channel);
  const mon = createClient(MonitorConnection, channel);
  return {
    name: "ours",
    unary: (req) => ns.request(req),
    async stream() {
      let n = 0;
      for await (const _ of mon.monitorConnections({})) n++;
      return n;
    },
    close: () => channel.close(),
  };
}

function rawStack(target: string): Stack {
  const client = new grpc.Client(target, grpc.credentials.createInsecure());
  const req = nsDef.request as grpc.MethodDefinition<Message, Message>;
  const mon = monDef.monitorConnections as grpc.MethodDefinition<Message, Message>;
  const selector = create(MonitorScopeSelectorSchema);
  return {
    name: "raw grpc-js",
    unary: (r) =>
      new Promise((resolve, reject) =>
        client.makeUnaryRequest(req.path, req.requestSerialize, req.responseDeserialize, r, (err, res) =>
          err ? reject(err) : resolve(res),
        ),
      ),
    stream: () =>
      new Promise((resolve, reject) => {
        let n = 0;
        const s = client.makeServerStreamRequest(mon.path, mon.requestSerialize, mon.responseDeserialize, selector);
        s.on("data", () => n++);
        s.on("error", reject);
        s.on("end", () => resolve(n));
      }),
    close: () => client.close(),
  };
}

function pct(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] ?? Number.NaN;
}
const median = (xs: number[]): number =>
  pct(
    [...xs].sort((a, b) => a - b),
    50,
  );

/**
 * Unary latency with the stacks interleaved call by call for `ms`, so both see the same machine load;
 * returns sorted latencies per stack.
 */
async function latency(stacks: readonly Stack[], req: NetworkServiceRequest, ms: number): Promise<number[][]> {
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
async function throughput(
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
async function streamOnce(s: Stack, child: ChildProcess): Promise<{ ms: number; cpuUs: number }> {
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
