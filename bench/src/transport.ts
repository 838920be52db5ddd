/**
 * Transport: our typed gRPC layer (`@nsm-ts/sdk/tools/grpc`) against raw `@grpc/grpc-js` with the very same
 * protobuf-es serialisers, in the same run, over TCP loopback with NSM-sized messages (a Connection with a
 * four-hop path and JWT-sized tokens). Measures unary latency (1 in flight, p50/p99), unary throughput (64 in
 * flight) and a 10k-message server stream; rounds alternate between the stacks so machine load hits both.
 * Servers run in a child process (so client and server do not share one event loop).
 * Run: `npx tsc -b bench && node bench/dist/transport.js [rounds]` (default 5 rounds; stops starting rounds after 40 s).
 */
import { fork, type ChildProcess } from "node:child_process";
import { cpus, loadavg } from "node:os";
import { readFileSync } from "node:fs";
import * as grpc from "@grpc/grpc-js";
import { create, toBinary, type Message } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import {
  ConnectionEventSchema,
  ConnectionSchema,
  MonitorConnection,
  MonitorScopeSelectorSchema,
  NetworkService,
  NetworkServiceRequestSchema,
  State,
  type Connection,
  type NetworkServiceRequest,
} from "@nsm-ts/api/networkservice";
import { createClient, createServer, dial, grpcServiceDefinition } from "@nsm-ts/sdk/tools/grpc";

const STREAM_MESSAGES = 10_000;
const IN_FLIGHT = 64;

/** An NSM-sized Connection: 4 path segments with ~400-byte tokens, kernel mechanism, IP context. */
function nsmConnection(): Connection {
  const token = "eyJhbGciOiJFUzI1NiJ9." + "x".repeat(300) + "." + "s".repeat(86);
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

/** Child process: serve both stacks and report their addresses on IPC. */
async function serve(): Promise<void> {
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
  process.on("message", (m) => {
    if (m === "cpu") process.send?.({ cpu: process.cpuUsage() });
  });
  process.send?.({ ours: oursUrl, raw: `127.0.0.1:${rawPort}` });
  process.on("disconnect", () => {
    raw.forceShutdown();
    void ours.close({ graceMs: 0 }).then(() => process.exit(0));
  });
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
  const req = nsDef["request"] as grpc.MethodDefinition<Message, Message>;
  const mon = monDef["monitorConnections"] as grpc.MethodDefinition<Message, Message>;
  const selector = create(MonitorScopeSelectorSchema);
  return {
    name: "raw grpc-js",
    unary: (r) =>
      new Promise((resolve, reject) =>
        client.makeUnaryRequest(req.path, req.requestSerialize, req.responseDeserialize, r, (err, res) => (err ? reject(err) : resolve(res))),
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
const median = (xs: number[]): number => pct([...xs].sort((a, b) => a - b), 50);

/** Sequential calls for `ms` (at most `max`); returns sorted latencies. */
async function latency(s: Stack, req: NetworkServiceRequest, ms: number, max: number): Promise<number[]> {
  const out: number[] = [];
  const stop = performance.now() + ms;
  while (out.length < max && performance.now() < stop) {
    const t = performance.now();
    await s.unary(req);
    out.push(performance.now() - t);
  }
  return out.sort((a, b) => a - b);
}

/** Calls/s with IN_FLIGHT concurrent callers for about `ms`. */
async function throughput(s: Stack, req: NetworkServiceRequest, ms: number, calls = { n: 0 }): Promise<number> {
  let done = 0;
  const t = performance.now();
  const stop = t + ms;
  const worker = async (): Promise<void> => {
    while (performance.now() < stop) {
      await s.unary(req);
      done++;
    }
  };
  await Promise.all(Array.from({ length: IN_FLIGHT }, worker));
  calls.n = done;
  return (done / (performance.now() - t)) * 1000;
}

async function streamTime(s: Stack): Promise<number> {
  const t = performance.now();
  const n = await s.stream();
  if (n !== STREAM_MESSAGES) throw new Error(`${s.name}: stream delivered ${n} messages`);
  return performance.now() - t;
}

interface Sample {
  p50: number;
  p99: number;
  tput: number;
  stream: number;
  /** Client + server CPU per call in the 64-in-flight phase, µs. */
  cpuCall: number;
  /** Client + server CPU for the whole stream, ms. */
  cpuStream: number;
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

/** Measures both stacks in alternating rounds; returns markdown lines. */
export async function runTransportBench(rounds = 5): Promise<string[]> {
  const child: ChildProcess = fork(new URL(import.meta.url).pathname, ["--serve"], { stdio: ["ignore", "inherit", "inherit", "ipc"] });
  try {
    const addr = await new Promise<{ ours: string; raw: string }>((resolve, reject) => {
      child.once("message", (m) => resolve(m as { ours: string; raw: string }));
      child.once("exit", (code) => reject(new Error(`transport bench server exited (${code})`)));
    });
    const raw = rawStack(addr.raw);
    const ours = ourStack(addr.ours);
    const req = create(NetworkServiceRequestSchema, { connection: nsmConnection(), mechanismPreferences: [{ cls: "LOCAL", type: "KERNEL" }] });
    const bytes = toBinary(NetworkServiceRequestSchema, req).length;
    for (const s of [raw, ours]) {
      await latency(s, req, 300, 300); // warm-up: connect, JIT
      await throughput(s, req, 300);
      await streamTime(s);
    }
    const load0 = loadavg()[0] ?? 0;
    const t0 = performance.now();
    const samples: Array<{ raw: Sample; ours: Sample }> = [];
    const measure = async (s: Stack): Promise<Sample> => {
      const lat = await latency(s, req, 500, 2000);
      const c0 = await cpuNow(child);
      const calls = { n: 0 };
      const tput = await throughput(s, req, 1000, calls);
      const c1 = await cpuNow(child);
      const stream = await streamTime(s);
      const c2 = await cpuNow(child);
      return { p50: pct(lat, 50), p99: pct(lat, 99), tput, stream, cpuCall: (c1 - c0) / calls.n, cpuStream: (c2 - c1) / 1000 };
    };
    // Bounded: no new round after 40 s (at least 2 rounds), so the bench stays under a minute.
    for (let r = 0; r < rounds && (r < 2 || performance.now() - t0 < 40_000); r++) {
      // Alternate who goes first so a change in machine load hits both stacks alike.
      if (r % 2 === 0) {
        const a = await measure(raw);
        samples.push({ raw: a, ours: await measure(ours) });
      } else {
        const b = await measure(ours);
        samples.push({ ours: b, raw: await measure(raw) });
      }
    }
    raw.close();
    ours.close();
    const wallS = (performance.now() - t0) / 1000;
    const load1 = loadavg()[0] ?? 0;

    const med = (k: keyof Sample, side: "raw" | "ours"): number => median(samples.map((x) => x[side][k]));
    // The ratio is taken per round (both stacks under the same load), then the median over rounds.
    const ratio = (k: keyof Sample): string => median(samples.map((x) => x.ours[k] / x.raw[k])).toFixed(2);
    const row = (name: string, side: "raw" | "ours"): string =>
      `| ${name} | ${med("p50", side).toFixed(3)} | ${med("p99", side).toFixed(3)} | ${med("tput", side).toFixed(0)} | ${med("cpuCall", side).toFixed(0)} | ${med("stream", side).toFixed(0)} | ${med("cpuStream", side).toFixed(0)} |`;
    const model = readFileSync("/proc/cpuinfo", "utf8").match(/model name\s*:\s*(.*)/)?.[1] ?? cpus()[0]?.model ?? "unknown";
    return [
      `Machine: ${model}, nproc ${cpus().length}, node ${process.version}, load average ${load0.toFixed(1)} → ${load1.toFixed(1)}; ${wallS.toFixed(0)} s measuring.`,
      `Request ${bytes} bytes (NetworkServiceRequest with a 4-hop Connection), response the Connection; stream messages are`,
      `ConnectionEvents carrying that Connection. ${samples.length} alternating rounds, each: sequential calls for 0.5 s, ${IN_FLIGHT} in flight`,
      `for 1 s, one ${STREAM_MESSAGES}-message stream. CPU = user + system of client and server processes together.`,
      "Values are medians over rounds; ratios are medians of the per-round ratios (both stacks measured back to back).",
      "",
      `| stack | unary p50 ms | unary p99 ms | calls/s (${IN_FLIGHT} in flight) | CPU µs/call | ${STREAM_MESSAGES / 1000}k stream ms | stream CPU ms |`,
      "|---|---|---|---|---|---|---|",
      row("raw grpc-js + protobuf-es serialisers", "raw"),
      row("our typed layer (sdk/tools/grpc)", "ours"),
      `| **ratio ours / raw** | ${ratio("p50")} | ${ratio("p99")} | ${ratio("tput")} | ${ratio("cpuCall")} | ${ratio("stream")} | ${ratio("cpuStream")} |`,
      "",
      "Per round (ours / raw): " +
        samples
          .map((x) => `p50 ${(x.ours.p50 / x.raw.p50).toFixed(2)}, calls/s ${(x.ours.tput / x.raw.tput).toFixed(2)}, CPU/call ${(x.ours.cpuCall / x.raw.cpuCall).toFixed(2)}, stream ${(x.ours.stream / x.raw.stream).toFixed(2)}, stream CPU ${(x.ours.cpuStream / x.raw.cpuStream).toFixed(2)}`)
          .join("; ") +
        ".",
    ];
  } finally {
    child.disconnect();
  }
}

if (process.argv.includes("--serve")) {
  await serve();
} else if (process.argv[1]?.endsWith("transport.js")) {
  const n = Number(process.argv[2] ?? "5");
  const lines = await runTransportBench(Number.isInteger(n) && n > 0 && n <= 20 ? n : 5);
  process.stdout.write(`${lines.join("\n")}\n`);
}
