/**
 * Where the time of a local Request goes, hop by hop: the client (this process, the SDK's standard `client()`),
 * cmd-nsmgr, cmd-forwarder and cmd-endpoint as processes (NOOP data plane, cmd-registry beside them), each CPU-profiled
 * (`node --cpu-prof`; the client through the inspector). N Requests (each followed by its Close) run one at a time
 * after a warm-up; only the samples taken in that window count. Per program the bench prints its CPU per
 * Request (from /proc, the whole process) and the split of its main-thread samples into tokens (signing,
 * verification, authorization), discovery/registry, monitor/heal, logging, protobuf (de)serialisation, gRPC
 * transport, other nsm-ts code, GC and the rest; plus the Request's wall-clock p50/p99.
 *
 * Run: `npx tsc -b bench && node bench/dist/hops.js [requests=2000]`. The profiles stay in the printed directory
 * for a closer look (Chrome DevTools → Performance → load).
 */
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { Session } from "node:inspector/promises";
import { cpus, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { create } from "@bufbuild/protobuf";
import { NetworkServiceRequestSchema } from "@nsm-ts/api/networkservice";
import { devIdentity } from "@nsm-ts/base/identity";
import { createTokenGenerator } from "@nsm-ts/base/token";
import { client, mechanisms } from "@nsm-ts/sdk/networkservice";
import { freePort } from "@nsm-ts/testing/net";
import { cpuMs } from "./lib/proc-stats.js";
import { program as start, stop, stopAll } from "./lib/procs.js";
import { breakdown, CATEGORIES, type Category, type CpuProfile, loadProfile } from "./lib/profile.js";

const nowUs = (): number => Number(process.hrtime.bigint() / 1000n);

/** Starts program `name` with `env` (and node options) and waits for its "<name> serving" log line. */
const program = (name: string, env: Record<string, string>, nodeArgs: string[] = []) => start(name, env, `"${name} serving"`, { nodeArgs });

async function main(): Promise<void> {
  const n = Number(process.argv[2] ?? 2000);
  const dir = mkdtempSync(join(tmpdir(), "nsm-bench-hops-"));
  const profDir = join(dir, "profiles");
  const sock = (name: string): string => `unix://${join(dir, name)}`;
  const phase = (what: string): boolean => process.stderr.write(`hops bench: ${what}\n`);
  const prof = (name: string): string[] => ["--cpu-prof", `--cpu-prof-dir=${profDir}`, `--cpu-prof-name=${name}.cpuprofile`];
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
      const conn = await nsc.request(req());
      lat.push(performance.now() - t);
      await nsc.close(conn);
    }
    const to = nowUs();
    const selfCpu = process.cpuUsage(self0);
    const cpu = Object.fromEntries(Object.entries(procs).map(([k, c]) => [k, cpuMs(c.pid ?? 0) - (cpu0[k] ?? 0)]));
    const { profile } = await session.post("Profiler.stop");
    session.disconnect();
    await nsc.dispose();
    writeFileSync(join(dir, "client.cpuprofile"), JSON.stringify(profile));
    // SIGTERM: the programs drain and exit normally, which is when node writes their profiles.
    await Promise.all(Object.values(procs).map((c) => stop(c)));
    const files = readdirSync(profDir);
    const profiles: Array<[string, CpuProfile, number]> = [
      ["client (this process)", profile as unknown as CpuProfile, (selfCpu.user + selfCpu.system) / 1000],
      ...Object.keys(procs).map((k): [string, CpuProfile, number] => {
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
        .join(" ")}; ${n} local NOOP Requests (each then closed), one at a time`,
      `Request wall time p50 ${pct(50).toFixed(2)} ms, p99 ${pct(99).toFixed(2)} ms; profiles in ${dir}`,
      "",
      `| hop | CPU ms per Request + Close (/proc) | main-thread ms sampled | ${CATEGORIES.join(" | ")} |`,
      `|---|---|---|${CATEGORIES.map(() => "---").join("|")}|`,
    ];
    for (const [name, p, cpuTotal] of profiles) {
      const b = breakdown(p, from, to);
      const sampled = [...b.values()].reduce((a, x) => a + x, 0);
      const share = (c: Category): string => `${(((b.get(c) ?? 0) / (sampled || 1)) * 100).toFixed(1)} %`;
      lines.push(`| ${name} | ${(cpuTotal / n).toFixed(3)} | ${sampled.toFixed(0)} | ${CATEGORIES.map(share).join(" | ")} |`);
    }
    process.stdout.write(`${lines.join("\n")}\n`);
    keep = true;
  } finally {
    await stopAll();
    if (!keep) rmSync(dir, { recursive: true, force: true });
  }
}

await main();
