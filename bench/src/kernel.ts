/**
 * Kernel operations: setup and teardown time of one veth cross-connect as the kernel forwarder builds it
 * (veth pair made in the forwarder's netns with ownership aliases, both ends moved and renamed into the
 * client and endpoint namespaces, then address, up and route in each), delivered per-command (one `ip`
 * process per change) versus batched (one `ip -batch -` per namespace), with namespaces addressed by name
 * (`ip -n`) and by path (`nsenter --net=`, as pods are reached through `/proc/<pid>/ns/net`); and the direct pair
 * the forwarder builds (made in the client netns with its peer straight in the endpoint netns) by a process per
 * commit versus a long-lived `ip -force -batch -` per namespace (`persistent`).
 * Run as root: `node bench/dist/kernel.js [iterations]`. Skips with a one-line reason otherwise.
 */
import { randomBytes } from "node:crypto";
import { cpus, release } from "node:os";
import {
  Batch,
  createIpExecutor,
  createNamedNetns,
  deleteNamedNetns,
  type IpExecutor,
  type IpMode,
  listLinks,
  Netns,
  ownerAlias,
  runCommand,
} from "@nsm-ts/sdk-linux";

/** One measured series. */
export interface KernelBenchRow {
  name: string;
  iterations: number;
  /** Number of child processes one setup starts. */
  processes: number;
  setupP50Ms: number;
  setupP99Ms: number;
  teardownP50Ms: number;
  teardownP99Ms: number;
}

function pct(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i] ?? Number.NaN;
}

interface Spaces {
  fwd: Netns;
  client: Netns;
  endpoint: Netns;
}

/**
 * Builds the cross-connect; returns the number of processes it started. `direct` creates the pair in the
 * client netns with the peer straight in the endpoint netns (no forwarder-netns step, no moves).
 */
async function setupCrossConnect(ip: IpExecutor, ns: Spaces, i: number, parallel: boolean, direct: boolean, k = 0): Promise<number> {
  const id = `bench-${i}-${k}`;
  const dev = `nsm-${k}`;
  const [ca, ea] = [`169.254.${k + 1}.1`, `169.254.${k + 1}.2`];
  if (direct) {
    const c = new Batch(ip, ns.client)
      .addVeth({
        name: dev,
        peerName: dev,
        peerNetns: ns.endpoint,
        mtu: 1450,
        alias: ownerAlias({ owner: "bench", connectionId: id, role: "client" }),
      })
      .addAddress(dev, `${ca}/32`)
      .setUp(dev)
      .addRoute({ dst: `${ea}/32`, dev: dev });
    const e = new Batch(ip, ns.endpoint)
      .setAlias(dev, ownerAlias({ owner: "bench", connectionId: id, role: "endpoint" }))
      .addAddress(dev, `${ea}/32`)
      .setUp(dev)
      .addRoute({ dst: `${ca}/32`, dev: dev });
    const lines = c.size + e.size;
    await c.commit();
    await e.commit();
    return ip.mode === "per-command" ? lines : ip.mode === "persistent" ? 0 : 2;
  }
  const f = new Batch(ip, ns.fwd)
    .addVeth({
      name: `nsmtmp-a${k}`,
      peerName: `nsmtmp-b${k}`,
      mtu: 1450,
      alias: ownerAlias({ owner: "bench", connectionId: id, role: "client" }),
      peerAlias: ownerAlias({ owner: "bench", connectionId: id, role: "endpoint" }),
    })
    .moveLink(`nsmtmp-a${k}`, ns.client, dev)
    .moveLink(`nsmtmp-b${k}`, ns.endpoint, dev);
  const c = new Batch(ip, ns.client)
    .addAddress(dev, `${ca}/32`)
    .setUp(dev)
    .addRoute({ dst: `${ea}/32`, dev: dev });
  const e = new Batch(ip, ns.endpoint)
    .addAddress(dev, `${ea}/32`)
    .setUp(dev)
    .addRoute({ dst: `${ca}/32`, dev: dev });
  const lines = [f.size, c.size, e.size];
  await f.commit();
  if (parallel) await Promise.all([c.commit(), e.commit()]);
  else {
    await c.commit();
    await e.commit();
  }
  if (ip.mode === "persistent") return 0;
  return ip.mode === "per-command" ? lines.reduce((a, b) => a + b, 0) : lines.filter((n) => n > 0).length;
}

async function measure(
  name: string,
  mode: IpMode,
  parallel: boolean,
  ns: Spaces,
  iterations: number,
  direct = false,
): Promise<KernelBenchRow> {
  const ip = createIpExecutor({ mode });
  try {
    return await runSeries(name, ip, parallel, ns, iterations, direct);
  } finally {
    ip.close?.();
  }
}

async function runSeries(
  name: string,
  ip: IpExecutor,
  parallel: boolean,
  ns: Spaces,
  iterations: number,
  direct: boolean,
): Promise<KernelBenchRow> {
  const setup: number[] = [];
  const teardown: number[] = [];
  let processes = 0;
  for (let i = -3; i < iterations; i++) {
    const t0 = performance.now();
    processes = await setupCrossConnect(ip, ns, i, parallel, direct);
    const t1 = performance.now();
    await new Batch(ip, ns.client).deleteLink("nsm-0").commit(); // the peer goes with it
    const t2 = performance.now();
    if (i === -3) {
      // correctness check once per series, untimed: both ends gone, nothing left in the forwarder netns
      const left = [...(await listLinks(ip, ns.fwd)), ...(await listLinks(ip, ns.endpoint))].filter((l) => l.name !== "lo");
      if (left.length > 0) throw new Error(`bench: leftovers after teardown: ${left.map((l) => l.name).join(", ")}`);
    }
    if (i >= 0) {
      setup.push(t1 - t0);
      teardown.push(t2 - t1);
    }
  }
  setup.sort((a, b) => a - b);
  teardown.sort((a, b) => a - b);
  const r = (x: number) => Math.round(x * 10) / 10;
  return {
    name,
    iterations,
    processes,
    setupP50Ms: r(pct(setup, 50)),
    setupP99Ms: r(pct(setup, 99)),
    teardownP50Ms: r(pct(teardown, 50)),
    teardownP99Ms: r(pct(teardown, 99)),
  };
}

/** Wall time of `n` cross-connects set up (and then torn down) at the same time, as under a burst of requests. */
async function measureConcurrent(
  name: string,
  mode: IpMode,
  ns: Spaces,
  n: number,
  rounds: number,
  direct = false,
): Promise<KernelBenchRow> {
  const ip = createIpExecutor({ mode });
  try {
    return await runConcurrent(name, ip, ns, n, rounds, direct);
  } finally {
    ip.close?.();
  }
}

async function runConcurrent(
  name: string,
  ip: IpExecutor,
  ns: Spaces,
  n: number,
  rounds: number,
  direct: boolean,
): Promise<KernelBenchRow> {
  const setup: number[] = [];
  const teardown: number[] = [];
  let processes = 0;
  for (let i = -1; i < rounds; i++) {
    const slots = Array.from({ length: n }, (_, k) => k);
    const t0 = performance.now();
    const counts = await Promise.all(slots.map((k) => setupCrossConnect(ip, ns, i, false, direct, k)));
    const t1 = performance.now();
    await Promise.all(slots.map((k) => new Batch(ip, ns.client).deleteLink(`nsm-${k}`).commit()));
    const t2 = performance.now();
    processes = counts.reduce((a, b) => a + b, 0);
    if (i >= 0) {
      setup.push(t1 - t0);
      teardown.push(t2 - t1);
    }
  }
  setup.sort((a, b) => a - b);
  teardown.sort((a, b) => a - b);
  const r = (x: number) => Math.round(x * 10) / 10;
  return {
    name,
    iterations: rounds,
    processes,
    setupP50Ms: r(pct(setup, 50)),
    setupP99Ms: r(pct(setup, 99)),
    teardownP50Ms: r(pct(teardown, 50)),
    teardownP99Ms: r(pct(teardown, 99)),
  };
}

/** Why the bench cannot run here, or undefined. */
export async function kernelBenchUnavailable(): Promise<string | undefined> {
  if (process.platform !== "linux") return `not Linux (${process.platform})`;
  if (process.getuid?.() !== 0) return "not root (needs root or CAP_NET_ADMIN+CAP_SYS_ADMIN)";
  const r = await runCommand(["nsenter", "--version"]).catch(() => undefined);
  if (r?.code !== 0) return "nsenter (util-linux) not installed";
  return undefined;
}

/** Runs every series; creates its own namespaces and deletes them even on failure. */
export async function runKernelBench(iterations = 30): Promise<KernelBenchRow[]> {
  const tag = randomBytes(3).toString("hex");
  const names = ["fwd", "cl", "ep"].map((s) => `nsmts-b-${tag}-${s}`);
  const rows: KernelBenchRow[] = [];
  const onSignal = (): void => {
    void Promise.all(names.map((n) => deleteNamedNetns(n).catch(() => undefined))).then(() => process.exit(130));
  };
  process.once("SIGINT", onSignal);
  try {
    const [fwd, client, endpoint] = await Promise.all(names.map((n) => createNamedNetns(n)));
    if (!fwd || !client || !endpoint) throw new Error("bench: namespaces not created");
    const named: Spaces = { fwd, client, endpoint };
    // the same namespaces reached by path: what a forwarder gets from pods (file:///proc/<pid>/ns/net)
    const byPath: Spaces = {
      fwd,
      client: pathHandle(client),
      endpoint: pathHandle(endpoint),
    };
    const oneIp = await timeOneProcess(client, iterations);
    rows.push(oneIp);
    rows.push(await measure("per-command, netns by name (ip -n)", "per-command", false, named, iterations));
    rows.push(await measure("batched, netns by name (ip -n)", "batch", false, named, iterations));
    rows.push(await measure("batched + client/endpoint in parallel, by name", "batch", true, named, iterations));
    rows.push(await measure("per-command, netns by path (nsenter)", "per-command", false, byPath, iterations));
    rows.push(await measure("batched, netns by path (nsenter)", "batch", false, byPath, iterations));
    rows.push(await measure("batched + client/endpoint in parallel, by path", "batch", true, byPath, iterations));
    // What the forwarder builds for a local connection: the pair made in the client netns with its peer directly in
    // the endpoint netns (no moves), delivered by a process per commit or by one long-lived `ip -batch` per netns.
    rows.push(await measure("batched, pair created client→endpoint directly, by path", "batch", false, byPath, iterations, true));
    rows.push(await measure("persistent ip -batch per netns, direct pair, by path", "persistent", false, byPath, iterations, true));
    rows.push(await measure("batched, direct pair, by path (again, for drift)", "batch", false, byPath, iterations, true));
    const rounds = Math.max(3, Math.round(iterations / 3));
    rows.push(await measureConcurrent("10 at once (wall time), per-command, by path", "per-command", byPath, 10, rounds));
    rows.push(await measureConcurrent("10 at once (wall time), batched, by path", "batch", byPath, 10, rounds));
    rows.push(await measureConcurrent("10 at once (wall time), batched, direct pair, by path", "batch", byPath, 10, rounds, true));
    rows.push(await measureConcurrent("10 at once (wall time), persistent, direct pair, by path", "persistent", byPath, 10, rounds, true));
  } finally {
    process.removeListener("SIGINT", onSignal);
    for (const n of names) await deleteNamedNetns(n);
  }
  return rows;
}

/** A path-kind handle for a named netns: a bind mount outside /run/netns is reached through nsenter. */
function pathHandle(ns: Netns): Netns {
  return new Netns(ns.path, { kind: "path", path: ns.path }, ns.inode, ns.dev, false);
}

/** Baseline: one `ip -n <ns> link show lo` process, the unit cost of per-command delivery. */
async function timeOneProcess(ns: Netns, iterations: number): Promise<KernelBenchRow> {
  const t: number[] = [];
  for (let i = -3; i < iterations; i++) {
    const t0 = performance.now();
    const r = await runCommand(ns.ipArgv(["link", "show", "lo"]));
    if (r.code !== 0) throw new Error(`bench: ip failed: ${r.stderr}`);
    if (i >= 0) t.push(performance.now() - t0);
  }
  t.sort((a, b) => a - b);
  const r = (x: number) => Math.round(x * 10) / 10;
  return {
    name: "baseline: one `ip -n X link show lo` process",
    iterations,
    processes: 1,
    setupP50Ms: r(pct(t, 50)),
    setupP99Ms: r(pct(t, 99)),
    teardownP50Ms: Number.NaN,
    teardownP99Ms: Number.NaN,
  };
}

/** Machine facts printed with the results. */
export async function machineInfo(): Promise<string> {
  const ip = (await runCommand(["ip", "-V"]).catch(() => undefined))?.stdout.trim() ?? "ip: unknown";
  return `${cpus()[0]?.model ?? "cpu"} × ${cpus().length}, Linux ${release()}, node ${process.version}, ${ip}`;
}

const isMain = process.argv[1]?.endsWith("kernel.js") ?? false;
if (isMain) {
  const reason = await kernelBenchUnavailable();
  if (reason !== undefined) {
    process.stdout.write(`kernel bench skipped: ${reason}\n`);
  } else {
    const n = Number(process.argv[2] ?? "30");
    const iterations = Number.isInteger(n) && n > 0 && n <= 1000 ? n : 30;
    const rows = await runKernelBench(iterations);
    process.stdout.write(`${await machineInfo()}\n\n`);
    process.stdout.write(
      "| series | processes per setup | setup p50 ms | setup p99 ms | teardown p50 ms | teardown p99 ms |\n|---|---|---|---|---|---|\n",
    );
    const f = (x: number) => (Number.isNaN(x) ? "—" : x.toFixed(1));
    for (const r of rows) {
      process.stdout.write(
        `| ${r.name} | ${r.processes} | ${f(r.setupP50Ms)} | ${f(r.setupP99Ms)} | ${f(r.teardownP50Ms)} | ${f(r.teardownP99Ms)} |\n`,
      );
    }
    process.stdout.write(
      `\n${iterations} iterations per series after 3 warm-up rounds (concurrent series: ${Math.max(3, Math.round(iterations / 3))} rounds after 1); p99 of 30 samples is the maximum.\n`,
    );
  }
}
