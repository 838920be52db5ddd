/**
 * Scale per node: N live NOOP connections through one cmd-nsmgr + cmd-forwarder pair (programs as processes, with
 * cmd-registry and one cmd-endpoint), refreshed on the default schedule. The connections are opened in steps (N/4,
 * N/2, 3N/4, N); at each step the bench reports the resident memory of nsmgr and forwarder per connection and their
 * CPU time over one refresh period (read from /proc), together with the refreshes the client made in that period,
 * so CPU per refresh can be compared across steps: flat means no per-refresh cost grows with the count. The idle
 * CPU of the same processes with no connection is the baseline. At the end the last step's refresh request goes
 * through three raw relay processes at the same pace, built from our typed layer, grpc-js alone and bare
 * node:http2: the CPU the two gRPC hops alone would cost at that refresh rate.
 *
 * Run: `npx tsc -b bench && node bench/dist/scale.js [connections=10000] [tokenLifetime=10m] [steps=4]`.
 * The refresh period follows the token lifetime (every hop re-requests at 0.2–0.4 × the shortest remaining token
 * lifetime), so with the default 10m each step measures for 4 minutes; a shorter lifetime (e.g. `30s`) checks the
 * bench quickly.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { cpus, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { create } from "@bufbuild/protobuf";
import { type Connection, type NetworkServiceRequest, NetworkServiceRequestSchema } from "@nsm-ts/api/networkservice";
import { duration as parseDuration } from "@nsm-ts/base/config";
import { devIdentity } from "@nsm-ts/base/identity";
import { createTokenGenerator } from "@nsm-ts/base/token";
import { client, mechanisms } from "@nsm-ts/sdk/networkservice";
import { freePort } from "@nsm-ts/testing/net";
import { requestCounter } from "./lib/netns.js";
import { cpuMs, rssBytes, scrape } from "./lib/proc-stats.js";
import { pool, program as start, stopAll } from "./lib/procs.js";
import { refreshRequest, relayCpu } from "./lib/relays.js";

const MB = 1024 * 1024;

/** Starts program `name` with `env` (and node options) and waits for its "<name> serving" log line. */
const program = (name: string, env: Record<string, string>, nodeArgs: string[] = []) => start(name, env, `"${name} serving"`, { nodeArgs });

async function main(): Promise<void> {
  const total = Number(process.argv[2] ?? 10_000);
  const lifetime = process.argv[3] ?? "10m";
  const steps = Number(process.argv[4] ?? 4);
  const lifetimeMs = parseDuration(lifetime);
  // The longest refresh interval of any hop: 0.4 × the token lifetime (see the refresh element).
  const periodMs = Math.ceil(0.4 * lifetimeMs);
  const dir = mkdtempSync(join(tmpdir(), "nsm-bench-scale-"));
  const sock = (name: string): string => `unix://${join(dir, name)}`;
  const phase = (what: string): boolean => process.stderr.write(`scale bench: ${what}\n`);
  try {
    const registryUrl = `tcp://127.0.0.1:${await freePort()}`;
    const node = sock("nsm.sock");
    const metricsPort = { nsmgr: await freePort(), forwarder: await freePort() };
    const common = { NSM_MAX_TOKEN_LIFETIME: lifetime };
    await program("cmd-registry", { ...common, NSM_LISTEN_ON: registryUrl });
    const nsmgr = await program("cmd-nsmgr", {
      ...common,
      NSM_NAME: "nsmgr-1",
      NODE_NAME: "node-1",
      NSM_LISTEN_ON: `${node},tcp://127.0.0.1:${await freePort()}`,
      NSM_REGISTRY_URL: registryUrl,
      NSM_METRICS_LISTEN_ON: `tcp://127.0.0.1:${metricsPort.nsmgr}`,
    });
    const forwarder = await program("cmd-forwarder", {
      ...common,
      NSM_NAME: "forwarder-1",
      NSM_CONNECT_TO: node,
      NSM_LISTEN_ON: sock("forwarder.sock"),
      NSM_METRICS_LISTEN_ON: `tcp://127.0.0.1:${metricsPort.forwarder}`,
    });
    const endpoint = await program("cmd-endpoint", {
      ...common,
      NSM_NAME: "nse-scale",
      NSM_CONNECT_TO: node,
      NSM_LISTEN_ON: sock("nse.sock"),
      NSM_SERVICE_NAMES: "scale",
      NSM_CIDR_PREFIX: "169.254.0.0/16",
    });
    const pids = { nsmgr: nsmgr.pid ?? 0, forwarder: forwarder.pid ?? 0, endpoint: endpoint.pid ?? 0 };
    phase("programs up");

    const counter = requestCounter();
    const id = await devIdentity("bench-nsc");
    const tokenGenerator = createTokenGenerator(id, { maxTokenLifetimeMs: lifetimeMs });
    const nsc = client({
      name: "bench-nsc",
      connectTo: node,
      tokenGenerator,
      insecure: true,
      heal: false,
      retry: false,
      additional: [counter.element],
    });
    const req = (): NetworkServiceRequest =>
      create(NetworkServiceRequestSchema, { connection: { networkService: "scale" }, mechanismPreferences: [mechanisms.noop.mechanism()] });
    for (let i = 0; i < 20; i++) await nsc.close(await nsc.request(req()));

    const both = (): number => cpuMs(pids.nsmgr) + cpuMs(pids.forwarder);
    const rss = (): { nsmgr: number; forwarder: number } => ({ nsmgr: rssBytes(pids.nsmgr), forwarder: rssBytes(pids.forwarder) });
    // Baseline: the same processes with no connection, over a short window.
    const idleWindowMs = Math.min(periodMs, 10_000);
    const c0 = both();
    await sleep(idleWindowMs);
    const idlePct = ((both() - c0) / idleWindowMs) * 100;
    const rss0 = rss();
    // Heap in use and live clock timers of both (their metrics): heap is less noisy than RSS, and timers per
    // connection show whether timers pile up.
    const gauges = async (): Promise<{ heap: number; timers: number; gcMs: number }> => {
      const [a, b] = await Promise.all([
        scrape(`http://127.0.0.1:${metricsPort.nsmgr}/metrics`),
        scrape(`http://127.0.0.1:${metricsPort.forwarder}/metrics`),
      ]);
      const sum = (k: string): number => (a.get(k) ?? 0) + (b.get(k) ?? 0);
      return {
        heap: sum("nsm_nodejs_heap_size_used_bytes"),
        timers: sum("nsm_clock_timers_pending"),
        // Main-thread GC pauses of every kind (the CPU above also counts V8's concurrent marking threads).
        gcMs: sum("nsm_nodejs_gc_duration_seconds_sum") * 1000,
      };
    };
    const g0 = await gauges();

    const conns: Connection[] = [];
    let failed = 0;
    const rows: string[] = [];
    let last = { cpu: 0, wallMs: 1, refreshes: 0 };
    for (let s = 1; s <= steps; s++) {
      const target = Math.round((total * s) / steps);
      const t0 = performance.now();
      const setupCpu0 = both();
      const setupReq0 = counter.count();
      const results = await pool(
        Array.from({ length: target - conns.length }, (_, i) => i),
        32,
        () => nsc.request(req()).catch((err: unknown) => err as Error),
      );
      const setupS = (performance.now() - t0) / 1000;
      // CPU per Request while opening: first Requests and the refreshes that ran meanwhile, all counted by the client.
      const setupCpuPerReq = (both() - setupCpu0) / Math.max(1, counter.count() - setupReq0);
      const opened = results.filter((r): r is Connection => !(r instanceof Error));
      failed += results.length - opened.length;
      if (opened.length < results.length)
        phase(`${results.length - opened.length} Requests failed: ${String(results.find((r) => r instanceof Error))}`);
      conns.push(...opened);
      phase(`${conns.length} connections open; measuring ${periodMs} ms`);
      const r0 = counter.count();
      const cpu0 = both();
      const ep0 = cpuMs(pids.endpoint);
      const gc0 = (await gauges()).gcMs;
      const w0 = performance.now();
      await sleep(periodMs);
      const wallMs = performance.now() - w0;
      const cpu = both() - cpu0;
      const refreshes = counter.count() - r0;
      last = { cpu, wallMs, refreshes };
      // The client is the path's first segment, which refreshes at 0.2 × the lifetime left (upstream's schedule:
      // 0.2 at index 0 up to 0.4 at the last hop), so each connection refreshes every 0.2 × the token lifetime.
      const expected = Math.round((conns.length * wallMs) / (0.2 * lifetimeMs));
      const m = rss();
      const g = await gauges();
      const gcPct = cpu > 0 ? ((g.gcMs - gc0) / cpu) * 100 : 0;
      const heapKb = ((g.heap - g0.heap) / conns.length / 1024).toFixed(1);
      const timers = ((g.timers - g0.timers) / conns.length).toFixed(2);
      const perConnKb = ((m.nsmgr + m.forwarder - rss0.nsmgr - rss0.forwarder) / conns.length / 1024).toFixed(1);
      rows.push(
        `| ${conns.length} | ${Math.round(opened.length / setupS)} /s | ${(m.nsmgr / MB).toFixed(0)} / ${(m.forwarder / MB).toFixed(0)} MB | ${perConnKb} kB | ${heapKb} kB | ${timers} | ${((cpu / wallMs) * 100).toFixed(2)} % | ${gcPct.toFixed(0)} % | ${(((cpuMs(pids.endpoint) - ep0) / wallMs) * 100).toFixed(2)} % | ${refreshes} of ~${expected} | ${refreshes > 0 ? Math.round((cpu * 1000) / refreshes) : "—"} µs | ${Math.round(setupCpuPerReq * 1000)} µs | ${results.length - opened.length} | ${loadavg()[0]?.toFixed(1)} |`,
      );
    }
    const tc = performance.now();
    const closes = await pool(conns, 32, (c) => nsc.close(c).catch((err: unknown) => err as Error));
    const closeRate = conns.length / ((performance.now() - tc) / 1000);
    const closeErrors = closes.filter((r): r is Error => r instanceof Error);
    if (closeErrors.length > 0) phase(`${closeErrors.length} Closes failed: ${String(closeErrors[0])}`);
    await nsc.dispose();
    // The floor at the same pace: what the gRPC hops alone cost when calls arrive as the refreshes did, one at a
    // time with the processes idle in between (every call wakes them, so a call costs more than back to back).
    const rate = (last.refreshes * 1000) / last.wallMs;
    const sample = conns.at(-1);
    const floors: string[] = [];
    if (sample !== undefined && rate > 0) {
      const msg = refreshRequest(sample);
      const calls = Math.round(rate * 30);
      const ours = { perCallMs: last.cpu / last.refreshes, pct: (last.cpu / last.wallMs) * 100 };
      for (const [kind, what] of [
        ["typed", "our typed layer (protobuf decoded and encoded)"],
        ["grpc", "grpc-js alone (bytes passed on)"],
        ["http2", "bare node:http2, gRPC framing passed on"],
      ] as const) {
        phase(`floor: ${calls} calls through ${kind} relays at ${rate.toFixed(1)}/s`);
        const f = await relayCpu(kind, dir, msg, calls, rate);
        floors.push(
          `| ${what} | ${(f.perCallMs * 1000).toFixed(0)} µs | ${f.pctOfCore.toFixed(1)} % | ${(ours.perCallMs / f.perCallMs).toFixed(2)} × |`,
        );
      }
      floors.unshift(
        "",
        `floor at the same pace: the last step's refresh request through three raw relay processes, ${calls} calls one at a time at ${rate.toFixed(1)}/s; the first two relays' CPU (each serves a call and makes one, as the nsmgr and the forwarder do) against nsmgr + forwarder at the last step (${(ours.perCallMs * 1000).toFixed(0)} µs per refresh, ${ours.pct.toFixed(1)} % of a core)`,
        "",
        "| relays built from | CPU per call (first two) | % of one core | nsmgr + forwarder ÷ floor |",
        "|---|---|---|---|",
      );
    }
    process.stdout.write(
      [
        `machine: ${cpus()[0]?.model ?? "cpu"} × ${cpus().length}, node ${process.version}, load ${loadavg()
          .map((x) => x.toFixed(2))
          .join(" ")}; token lifetime ${lifetime}, measured over ${periodMs} ms per step (one refresh period)`,
        `baseline: nsmgr + forwarder idle, no connections: ${idlePct.toFixed(2)} % of one core; RSS ${(rss0.nsmgr / MB).toFixed(0)} / ${(rss0.forwarder / MB).toFixed(0)} MB`,
        "",
        "| live connections | setup rate (32 in flight) | RSS nsmgr / forwarder | RSS per connection (both, over baseline) | heap used per connection | clock timers per connection | nsmgr + forwarder CPU (% of one core, target ≤ 10 %) | of which GC pauses | endpoint CPU | refreshes in the period (of ~expected) | CPU per refresh (nsmgr + forwarder) | CPU per Request while opening | Requests failed | load (1 min) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        ...rows,
        "",
        `close all ${conns.length}: ${Math.round(closeRate)} /s (32 in flight); Requests that failed while opening: ${failed}; Closes that failed: ${closeErrors.length}`,
        ...floors,
        "",
      ].join("\n"),
    );
  } finally {
    await stopAll();
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
