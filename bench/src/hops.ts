/**
 * Where the time of a local Request goes, hop by hop: the client (this process, the SDK's standard `client()`),
 * cmd-nsmgr, cmd-forwarder and cmd-endpoint as processes (NOOP data plane, cmd-registry beside them), each CPU-profiled
 * (`node --cpu-prof`; the client through the inspector). N Requests (each followed by its Close) run one at a time
 * after a warm-up; only the samples taken in that window count. Per program the bench prints its CPU per
 * Request (from /proc, the whole process) and the split of its main-thread samples into tokens (signing,
 * verification, authorization), discovery/registry, monitor/heal, logging, protobuf (de)serialisation, gRPC
 * transport, other nsm-ts code, GC and the rest; plus the Request's wall-clock p50/p99.
 *
 * Run: `npx tsc -b bench && node bench/dist/hops.js [requests=2000] [request|refresh] [live=200]`; `refresh` keeps
 * `live` connections open and re-requests them in turn, then carries the same message through three raw relays.
 * The profiles stay in the printed directory for a closer look (Chrome DevTools → Performance → load).
 */
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { Session } from "node:inspector/promises";
import { cpus, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { create } from "@bufbuild/protobuf";
import { type Connection, NetworkServiceRequestSchema } from "@nsm-ts/api/networkservice";
import { devIdentity } from "@nsm-ts/base/identity";
import { createTokenGenerator } from "@nsm-ts/base/token";
import { client, mechanisms } from "@nsm-ts/sdk/networkservice";
import { freePort } from "@nsm-ts/testing/net";
import { cpuMs } from "./lib/proc-stats.js";
import { pool, program as start, stop, stopAll } from "./lib/procs.js";
import { breakdown, CATEGORIES, type Category, type CpuProfile, loadProfile } from "./lib/profile.js";
import { refreshRequest, relayCpu } from "./lib/relays.js";

const nowUs = (): number => Number(process.hrtime.bigint() / 1000n);

/** Starts program `name` with `env` (and node options) and waits for its "<name> serving" log line. */
const program = (name: string, env: Record<string, string>, nodeArgs: string[] = []) => start(name, env, `"${name} serving"`, { nodeArgs });

async function main(): Promise<void> {
  const n = Number(process.argv[2] ?? 2000);
  // "refresh": K connections stay open and the timed loop re-requests them in turn (what a live connection costs
  // each hop on the refresh schedule); "request" (default): a new Request and its Close each time.
  const mode = process.argv[3] === "refresh" ? "refresh" : "request";
  // Live connections the refresh mode keeps open (a larger heap shows what per-connection state costs each refresh).
  const live = Number(process.argv[4] ?? 200);
  const dir = mkdtempSync(join(tmpdir(), "nsm-bench-hops-"));
  const profDir = join(dir, "profiles");
  const sock = (name: string): string => `unix://${join(dir, name)}`;
  const phase = (what: string): boolean => process.stderr.write(`hops bench: ${what}\n`);
  // BENCH_NO_PROFILE=1: the programs run without the sampling profiler, whose own cost (a third or more of a hop's
  // CPU) would otherwise be compared with relays that run without it; the table then has the /proc CPU only.
  const profiled = process.env.BENCH_NO_PROFILE !== "1";
  const prof = (name: string): string[] =>
    profiled ? ["--cpu-prof", `--cpu-prof-dir=${profDir}`, `--cpu-prof-name=${name}.cpuprofile`] : [];
  let keep = false;
  try {
    const registryUrl = `tcp://127.0.0.1:${await freePort()}`;
    const node = sock("nsm.sock");
    await program("cmd-registry", { NSM_LISTEN_ON: registryUrl });
    const nsmgr = await program(
      "cmd-nsmgr",
      {
        NSM_NAME: "nsmgr-1",
        NODE_NAME: "node-1",
        NSM_LISTEN_ON: `${node},tcp://127.0.0.1:${await freePort()}`,
        NSM_REGISTRY_URL: registryUrl,
      },
      prof("cmd-nsmgr"),
    );
    const forwarder = await program(
      "cmd-forwarder",
      { NSM_NAME: "forwarder-1", NSM_CONNECT_TO: node, NSM_LISTEN_ON: sock("forwarder.sock") },
      prof("cmd-forwarder"),
    );
    const endpoint = await program(
      "cmd-endpoint",
      {
        NSM_NAME: "nse-hops",
        NSM_CONNECT_TO: node,
        NSM_LISTEN_ON: sock("nse.sock"),
        NSM_SERVICE_NAMES: "hops",
        NSM_CIDR_PREFIX: "169.254.0.0/16",
      },
      prof("cmd-endpoint"),
    );
    const procs = { "cmd-nsmgr": nsmgr, "cmd-forwarder": forwarder, "cmd-endpoint": endpoint };
    phase("programs up");

    const id = await devIdentity("bench-nsc");
    const tokenGenerator = createTokenGenerator(id, { maxTokenLifetimeMs: 600_000 });
    const nsc = client({ name: "bench-nsc", connectTo: node, tokenGenerator, insecure: true, refresh: false, heal: false, retry: false });
    const req = () =>
      create(NetworkServiceRequestSchema, { connection: { networkService: "hops" }, mechanismPreferences: [mechanisms.noop.mechanism()] });
    for (let i = 0; i < Math.min(200, n); i++) await nsc.close(await nsc.request(req()));
    const open: Connection[] = [];
    if (mode === "refresh") {
      const opening = Array.from({ length: live }, () => req());
      await pool(opening, 16, async (r) => {
        open.push(await nsc.request(r));
      });
    }
    const refresh = async (i: number): Promise<void> => {
      const k = i % open.length;
      const conn = open[k] as Connection;
      open[k] = await nsc.request(
        create(NetworkServiceRequestSchema, { connection: conn, mechanismPreferences: [mechanisms.noop.mechanism()] }),
      );
    };
    // Warm the refresh path too (the first refreshes compile its code paths).
    for (let i = 0; i < Math.min(open.length, 200); i++) await refresh(i);

    const session = new Session();
    session.connect();
    await session.post("Profiler.enable");
    await session.post("Profiler.start");
    const cpu0 = Object.fromEntries(Object.entries(procs).map(([k, c]) => [k, cpuMs(c.pid ?? 0)]));
    const self0 = process.cpuUsage();
    const from = nowUs();
    const lat: number[] = [];
    for (let i = 0; i < n; i++) {
      const t = performance.now();
      if (mode === "refresh") {
        await refresh(i);
        lat.push(performance.now() - t);
        continue;
      }
      const conn = await nsc.request(req());
      lat.push(performance.now() - t);
      await nsc.close(conn);
    }
    const last = open[0];
    for (const c of open) await nsc.close(c);
    const to = nowUs();
    writeFileSync(join(dir, "window.json"), JSON.stringify({ fromUs: from, toUs: to }));
    const selfCpu = process.cpuUsage(self0);
    const cpu = Object.fromEntries(Object.entries(procs).map(([k, c]) => [k, cpuMs(c.pid ?? 0) - (cpu0[k] ?? 0)]));
    const { profile } = await session.post("Profiler.stop");
    session.disconnect();
    await nsc.dispose();
    writeFileSync(join(dir, "client.cpuprofile"), JSON.stringify(profile));
    const floor = mode === "refresh" && last !== undefined ? (await relayCpu("typed", dir, refreshRequest(last), n)).perCallMs : undefined;
    // SIGTERM: the programs drain and exit normally, which is when node writes their profiles.
    await Promise.all(Object.values(procs).map((c) => stop(c)));
    const files = profiled ? readdirSync(profDir) : [];
    const profiles: Array<[string, CpuProfile | undefined, number]> = [
      ["client (this process)", profile as unknown as CpuProfile, (selfCpu.user + selfCpu.system) / 1000],
      ...Object.keys(procs).map((k): [string, CpuProfile | undefined, number] => {
        if (!profiled) return [k, undefined, cpu[k] ?? 0];
        const f = files.find((x) => x.startsWith(k));
        if (f === undefined) throw new Error(`no profile written by ${k} in ${profDir}`);
        return [k, loadProfile(join(profDir, f)), cpu[k] ?? 0];
      }),
    ];
    lat.sort((a, b) => a - b);
    const pct = (p: number): number => lat[Math.min(lat.length - 1, Math.floor((p / 100) * lat.length))] ?? Number.NaN;
    const lines = [
      `machine: ${cpus()[0]?.model ?? "cpu"} × ${cpus().length}, node ${process.version}, load ${loadavg()
        .map((x) => x.toFixed(2))
        .join(
          " ",
        )}; ${mode === "refresh" ? `${n} refreshes of ${live} live local NOOP connections` : `${n} local NOOP Requests (each then closed)`}, one at a time`,
      `Request wall time p50 ${pct(50).toFixed(2)} ms, p99 ${pct(99).toFixed(2)} ms; profiles in ${dir}`,
      "",
      `| hop | CPU ms per ${mode === "refresh" ? "refresh" : "Request + Close"} (/proc) | main-thread ms sampled | ${CATEGORIES.join(" | ")} |`,
      `|---|---|---|${CATEGORIES.map(() => "---").join("|")}|`,
    ];
    for (const [name, p, cpuTotal] of profiles) {
      if (p === undefined) {
        lines.push(`| ${name} | ${(cpuTotal / n).toFixed(3)} | not profiled | ${CATEGORIES.map(() => "—").join(" | ")} |`);
        continue;
      }
      const b = breakdown(p, from, to);
      const sampled = [...b.values()].reduce((a, x) => a + x, 0);
      const share = (c: Category): string => `${(((b.get(c) ?? 0) / (sampled || 1)) * 100).toFixed(1)} %`;
      lines.push(`| ${name} | ${(cpuTotal / n).toFixed(3)} | ${sampled.toFixed(0)} | ${CATEGORIES.map(share).join(" | ")} |`);
    }
    if (floor !== undefined) {
      const ours = ((cpu["cmd-nsmgr"] ?? 0) + (cpu["cmd-forwarder"] ?? 0)) / n;
      lines.push(
        "",
        `baseline: the same connection message through 3 raw gRPC relay processes (\`relay.js typed\`), ${n} calls: the two middle-and-first relays (each serves and calls, as the nsmgr and the forwarder do) ${floor.toFixed(3)} ms CPU per call together; nsmgr + forwarder per refresh ${ours.toFixed(3)} ms = ${(ours / floor).toFixed(1)} × raw`,
      );
    }
    process.stdout.write(`${lines.join("\n")}\n`);
    keep = true;
  } finally {
    await stopAll();
    if (!keep) rmSync(dir, { recursive: true, force: true });
  }
}

await main();
