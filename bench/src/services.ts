/**
 * Services data plane: (1) connection setup through a ServiceIP (DNAT by our nftables rules in the client
 * namespace) versus straight to the instance address, measured inside the client namespace by a client
 * process (connect, read the server's reply, close), reported as a ratio; (2) time from a backend change in
 * the table to the rules applied (`upsert` → `waitReconciled`, i.e. render + one `nft -f -`) for a service
 * with many backends, round robin and consistent hash.
 * Run as root: `node bench/dist/services.js [connections] [backends] [changes]` (defaults 2000, 10000, 10).
 */

import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { once } from "node:events";
import { Batch, createIpExecutor, createNamedNetns, deleteNamedNetns, type Netns, runCommand, services } from "@nsm-ts/sdk-linux";

const SERVICE_IP = "203.0.113.10";
const SERVER_IP = "198.51.100.2";

const serverJs = `
const net = require("node:net");
net.createServer((s) => { s.on("error", () => {}); s.end("x\\n"); }).listen(8080, process.argv[1], () => process.stdout.write("ready\\n"));
`;

// Times each connection from connect() to the end of the server's reply, in the client's own process.
const clientJs = `
const net = require("node:net");
const [host, port, n] = process.argv.slice(1);
function one() {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const s = net.connect({ host, port: Number(port) });
    s.on("data", () => {});
    s.on("end", () => { s.destroy(); resolve(performance.now() - t0); });
    s.on("error", reject);
  });
}
(async () => {
  const out = [];
  for (let i = 0; i < 50; i++) await one();
  for (let i = 0; i < Number(n); i++) out.push(await one());
  process.stdout.write(JSON.stringify(out));
})();
`;

function pct(sorted: readonly number[], p: number): number {
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i] ?? Number.NaN;
}

async function connections(ns: Netns, host: string, port: number, n: number): Promise<number[]> {
  const r = await runCommand(ns.execArgv([process.execPath, "-e", clientJs, host, String(port), String(n)]));
  if (r.code !== 0) throw new Error(`bench: client failed: ${r.stderr}`);
  return (JSON.parse(r.stdout) as number[]).sort((a, b) => a - b);
}

const backend = (i: number, port = 8080): services.ServiceBackend => ({
  name: `b${i}`,
  // 169.254.0.0/16 holds 10,000 distinct addresses; these rules are only applied, never used.
  address: `169.254.${1 + (i >>> 8)}.${i & 255}`,
  port,
  protocol: "tcp",
  portName: "",
  node: `node-${i % 3}`,
  zone: "z",
  weight: 1,
  health: "healthy",
});

/** Why the bench cannot run here, or undefined. */
export async function servicesBenchUnavailable(): Promise<string | undefined> {
  if (process.platform !== "linux") return `not Linux (${process.platform})`;
  if (process.getuid?.() !== 0) return "not root (needs root or CAP_NET_ADMIN+CAP_SYS_ADMIN)";
  for (const tool of [
    ["nsenter", "--version"],
    ["nft", "--version"],
  ]) {
    const r = await runCommand(tool).catch(() => undefined);
    if (r?.code !== 0) return `${tool[0]} not installed`;
  }
  return undefined;
}

/** One result row. */
export interface ServicesBenchRow {
  series: string;
  samples: number;
  p50Ms: number;
  p99Ms: number;
  note: string;
}

/** Runs both measurements in namespaces of its own, removed even on failure. */
export async function runServicesBench(conns: number, backends: number, changes: number): Promise<ServicesBenchRow[]> {
  const tag = randomBytes(3).toString("hex");
  const names = [`nsmts-b-${tag}-svc-c`, `nsmts-b-${tag}-svc-s`];
  const rows: ServicesBenchRow[] = [];
  const ac = new AbortController();
  let server: ReturnType<typeof spawn> | undefined;
  try {
    const [client, srv] = await Promise.all(names.map((n) => createNamedNetns(n)));
    if (!client || !srv) throw new Error("bench: namespaces not created");
    const ip = createIpExecutor();
    await new Batch(ip, client)
      .addVeth({ name: "to-srv", peerName: "eth0", peerNetns: srv })
      .addAddress("to-srv", "198.51.100.1/30")
      .setUp("to-srv")
      .addRoute({ dst: "203.0.113.0/24", gateway: SERVER_IP, dev: "to-srv" })
      .commit();
    await new Batch(ip, srv).addAddress("eth0", `${SERVER_IP}/30`).setUp("eth0").commit();
    const [file, ...args] = srv.execArgv([process.execPath, "-e", serverJs, SERVER_IP]);
    server = spawn(file as string, args, { stdio: ["ignore", "pipe", "inherit"] });
    if (server.stdout) await once(server.stdout, "data");

    const dp = services.createServiceDataplane({ signal: ac.signal, refreshIntervalMs: 0 });
    const where = { node: "node-0", zone: "z" };
    const view = (
      revision: string,
      bs: services.ServiceBackend[],
      policy: services.BalancingPolicy = "round-robin",
    ): services.ServiceView => ({
      name: "bench",
      revision,
      frontends: [{ address: SERVICE_IP, port: 80, protocol: "tcp", policy, portName: "" }],
      backends: bs,
    });

    // (1) Connection setup: the same server, through the ServiceIP and directly.
    const real: services.ServiceBackend = { ...backend(0), address: SERVER_IP };
    await dp.waitReconciled(await dp.setNamespace(client, where, [view("c", [real])]));
    // Alternating rounds, so that load from other processes hits both series alike.
    const direct: number[] = [];
    const viaService: number[] = [];
    const per = Math.max(1, Math.ceil(conns / 4));
    for (let round = 0; round < 4; round++) {
      direct.push(...(await connections(client, SERVER_IP, 8080, per)));
      viaService.push(...(await connections(client, SERVICE_IP, 80, per)));
    }
    direct.sort((a, b) => a - b);
    viaService.sort((a, b) => a - b);
    const d50 = pct(direct, 50);
    const s50 = pct(viaService, 50);
    rows.push({
      series: "connection setup, direct to the instance address",
      samples: direct.length,
      p50Ms: d50,
      p99Ms: pct(direct, 99),
      note: "baseline",
    });
    rows.push({
      series: "connection setup, through the ServiceIP (DNAT in the client netns)",
      samples: viaService.length,
      p50Ms: s50,
      p99Ms: pct(viaService, 99),
      note: `${(s50 / d50).toFixed(2)}× direct (p50)`,
    });

    // (2) Backend change → rules applied, with `backends` backends.
    for (const policy of ["round-robin", "consistent-hash"] as const) {
      const base = Array.from({ length: backends }, (_, i) => backend(i));
      await dp.waitReconciled(await dp.setNamespace(client, where, [view(`${policy}-0`, base, policy)]));
      const t: number[] = [];
      for (let k = 1; k <= changes; k++) {
        // One backend's port changes: a new view object, as a watch delivers it.
        const bs = base.map((b, i) => (i === k % backends ? { ...b, port: 8080 + k } : b));
        const t0 = performance.now();
        await dp.waitReconciled(await dp.upsert(view(`${policy}-${k}`, bs, policy)));
        t.push(performance.now() - t0);
      }
      t.sort((a, b) => a - b);
      rows.push({
        series: `backend change → rules applied, ${backends} backends, ${policy}`,
        samples: changes,
        p50Ms: pct(t, 50),
        p99Ms: pct(t, 99),
        note: "render + one nft -f - (whole service table)",
      });
    }
    await dp.waitReconciled(await dp.removeNamespace(client));
  } finally {
    ac.abort();
    server?.kill("SIGKILL");
    for (const n of names) await deleteNamedNetns(n);
  }
  return rows;
}

const isMain = process.argv[1]?.endsWith("services.js") ?? false;
if (isMain) {
  const reason = await servicesBenchUnavailable();
  if (reason !== undefined) {
    process.stdout.write(`services bench skipped: ${reason}\n`);
  } else {
    const arg = (i: number, d: number, max: number): number => {
      const n = Number(process.argv[i] ?? d);
      return Number.isInteger(n) && n > 0 && n <= max ? n : d;
    };
    const conns = arg(2, 2000, 100_000);
    const backends = arg(3, 10_000, 60_000);
    const changes = arg(4, 10, 1000);
    const rows = await runServicesBench(conns, backends, changes);
    process.stdout.write("| series | samples | p50 ms | p99 ms | note |\n|---|---|---|---|---|\n");
    for (const r of rows)
      process.stdout.write(`| ${r.series} | ${r.samples} | ${r.p50Ms.toFixed(3)} | ${r.p99Ms.toFixed(3)} | ${r.note} |\n`);
  }
}
