/**
 * Chain-overhead benchmark: NetworkService.Request through the standard endpoint chain (updatepath, begin,
 * updatetoken with real ES256 tokens, authorize in dev mode, metadata, timeout, monitor, trimpath) against a
 * bare gRPC echo server for the same method, measured in the same run with the same client, messages and
 * transport. A third series runs the standard client chain (its own tokens per call, refresh armed) into the
 * endpoint chain. Every Request is a new connection; 64 calls in flight. Client and server share one
 * process, as in the one-process table of bench/RESULTS.md, "Transport".
 * Run: `npx tsc -b bench && node bench/dist/chain.js [requests] [tcp|unix]`.
 */
import { randomUUID } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { cpus, loadavg, release, tmpdir, totalmem } from "node:os";
import { join } from "node:path";
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { type Connection, ConnectionSchema, NetworkService, type NetworkServiceRequestSchema } from "@nsm-ts/api/networkservice";
import { createClient, createServer, dial, type NsmServer } from "@nsm-ts/base/grpc";
import { devIdentity } from "@nsm-ts/base/identity";
import { createTokenGenerator, tokenMetadata } from "@nsm-ts/base/token";
import { client, endpoint } from "@nsm-ts/sdk/networkservice";

const IN_FLIGHT = 64;
const LIFETIME_MS = 10 * 60_000;

/** One measured series. */
export interface ChainBenchRow {
  series: string;
  requests: number;
  p50Ms: number;
  p99Ms: number;
  perSecond: number;
  /** Process CPU time (user + system, client and server together) per request, µs: robust on a busy machine. */
  cpuUsPerRequest: number;
}

function pct(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN;
}

/** Runs `count` calls of `call`, `IN_FLIGHT` at a time; latencies of each call and the wall time. */
async function load(count: number, call: (i: number) => Promise<void>): Promise<Run> {
  const latencies: number[] = [];
  const cpu = process.cpuUsage();
  let next = 0;
  const start = performance.now();
  const worker = async (): Promise<void> => {
    while (next < count) {
      const i = next++;
      const t = performance.now();
      await call(i);
      latencies.push(performance.now() - t);
    }
  };
  await Promise.all(Array.from({ length: IN_FLIGHT }, worker));
  const used = process.cpuUsage(cpu);
  return { latencies: latencies.sort((a, b) => a - b), ms: performance.now() - start, cpuUs: used.user + used.system };
}

interface Run {
  latencies: number[];
  ms: number;
  cpuUs: number;
}

function row(series: string, r: Run): ChainBenchRow {
  return {
    series,
    requests: r.latencies.length,
    p50Ms: pct(r.latencies, 50),
    p99Ms: pct(r.latencies, 99),
    perSecond: (r.latencies.length / r.ms) * 1000,
    cpuUsPerRequest: r.cpuUs / r.latencies.length,
  };
}

/** The bench: returns the rows (echo, endpoint chain, client chain → endpoint chain). */
export async function runChainBench(requests: number, transport: "tcp" | "unix"): Promise<ChainBenchRow[]> {
  const dir = transport === "unix" ? mkdtempSync(join(tmpdir(), "nsm-bench-chain-")) : undefined;
  const listenUrl = (name: string): string => (dir ? `unix://${join(dir, `${name}.sock`)}` : "tcp://127.0.0.1:0");
  const servers: NsmServer[] = [];
  const rows: ChainBenchRow[] = [];
  try {
    const [nscId, nseId] = await Promise.all([devIdentity("nsc"), devIdentity("nse")]);
    const nscTokens = createTokenGenerator(nscId, { maxTokenLifetimeMs: LIFETIME_MS });
    // One token for every raw call: the client's cost is the same for both servers, the server's differs.
    const metadata = tokenMetadata(await nscTokens());
    const request = (id: string): MessageInitShape<typeof NetworkServiceRequestSchema> => ({
      connection: { id, networkService: "bench", path: { index: 0, pathSegments: [{ name: "nsc", id }] } },
      mechanismPreferences: [{ cls: "LOCAL", type: "KERNEL" }],
    });

    const echo = createServer();
    servers.push(echo);
    echo.addService(NetworkService, {
      request: async (req) => req.connection ?? create(ConnectionSchema),
      close: async () => ({}),
    });
    const echoUrl = await echo.listen(listenUrl("echo"));

    const ep = endpoint({ name: "nse", tokenGenerator: createTokenGenerator(nseId, { maxTokenLifetimeMs: LIFETIME_MS }), insecure: true });
    const chainServer = createServer();
    servers.push(chainServer);
    ep.serve(chainServer);
    const chainUrl = await chainServer.listen(listenUrl("nse"));

    const echoChannel = dial(echoUrl);
    const chainChannel = dial(chainUrl);
    const echoClient = createClient(NetworkService, echoChannel);
    const chainClient = createClient(NetworkService, chainChannel);
    const opened: Connection[] = [];
    const rawCall = (c: typeof echoClient, keep: boolean) => async () => {
      const conn = await c.request(request(randomUUID()), { metadata, timeoutMs: 15_000 });
      if (keep) opened.push(conn);
    };

    // Warm up both (JIT, channels), then alternate the measured series so drift hits both alike.
    await load(500, rawCall(echoClient, false));
    await load(500, rawCall(chainClient, true));
    const echoRuns: Run[] = [];
    const chainRuns: Run[] = [];
    for (let round = 0; round < 2; round++) {
      echoRuns.push(await load(requests / 2, rawCall(echoClient, false)));
      chainRuns.push(await load(requests / 2, rawCall(chainClient, true)));
    }
    const merge = (runs: Run[]): Run => ({
      latencies: runs.flatMap((r) => r.latencies).sort((a, b) => a - b),
      ms: runs.reduce((s, r) => s + r.ms, 0),
      cpuUs: runs.reduce((s, r) => s + r.cpuUs, 0),
    });
    rows.push(row("bare gRPC echo server", merge(echoRuns)));
    rows.push(row("endpoint() chain (tokens, dev mode)", merge(chainRuns)));

    // Close what the endpoint holds (its timeout timers), not measured.
    await load(opened.length, async (i) => {
      const conn = opened[i] as Connection;
      await chainClient.close(conn, { metadata, timeoutMs: 15_000 });
    });
    if (ep.monitor.connections().length !== 0) throw new Error("bench: connections left at the endpoint");

    // The whole standard client chain in front (client tokens signed per call, refresh armed, no heal).
    const nsc = client({ name: "nsc", connectTo: chainUrl, tokenGenerator: nscTokens, insecure: true, heal: false });
    const conns: Connection[] = [];
    const viaClient = async (): Promise<void> => {
      conns.push(await nsc.request({ connection: { networkService: "bench" }, mechanismPreferences: [{ cls: "LOCAL", type: "KERNEL" }] }));
    };
    await load(500, viaClient);
    rows.push(row("client() → endpoint() chains", await load(requests / 2, viaClient)));
    await nsc.dispose();

    echoChannel.close();
    chainChannel.close();
  } finally {
    await Promise.all(servers.map((s) => s.close({ graceMs: 100 })));
    if (dir) rmSync(dir, { recursive: true, force: true });
  }
  return rows;
}

/** Machine description for RESULTS.md. */
export function machine(): string {
  const mem = `${Math.round(totalmem() / 2 ** 30)} GB`;
  return `${cpus()[0]?.model ?? "cpu"} × ${cpus().length}, ${mem}, Linux ${release()}, node ${process.version}`;
}

async function main(): Promise<void> {
  const requests = Number(process.argv[2] ?? 10_000);
  const transport = process.argv[3] === "unix" ? "unix" : "tcp";
  const before = loadavg()[0] ?? 0;
  const rows = await runChainBench(requests, transport);
  const after = loadavg()[0] ?? 0;
  const base = rows[0];
  const lines = [
    `Machine: ${machine()}; transport ${transport}; load average ${before.toFixed(1)} → ${after.toFixed(1)}`,
    "",
    "| series | requests | p50 ms | p99 ms | req/s | CPU µs/req | p50 × echo | req/s ÷ echo | CPU × echo |",
    "|---|---|---|---|---|---|---|---|---|",
    ...rows.map(
      (r) =>
        `| ${r.series} | ${r.requests} | ${r.p50Ms.toFixed(2)} | ${r.p99Ms.toFixed(2)} | ${r.perSecond.toFixed(0)} | ${r.cpuUsPerRequest.toFixed(0)} | ${base ? (r.p50Ms / base.p50Ms).toFixed(2) : "-"} | ${base ? (r.perSecond / base.perSecond).toFixed(2) : "-"} | ${base ? (r.cpuUsPerRequest / base.cpuUsPerRequest).toFixed(2) : "-"} |`,
    ),
  ];
  process.stdout.write(`${lines.join("\n")}\n`);
}

if (import.meta.url === `file://${process.argv[1]}`) {
  main().catch((err: unknown) => {
    process.stderr.write(`${String(err)}\n`);
    process.exitCode = 1;
  });
}
