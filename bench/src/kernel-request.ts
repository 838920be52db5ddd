/**
 * KERNEL Requests through the real programs: cmd-registry, cmd-nsmgr and a KERNEL cmd-forwarder in a "node" netns,
 * cmd-endpoint in its own netns, the SDK client (as cmd-nsc builds it) in this process asking for a KERNEL interface
 * in a client pod's netns (an unnamed netns held by a process, reached through `/proc/<pid>/ns/net` as a pod is).
 * Series, all in one run:
 * - baseline: the kernel operations alone, the direct pair the forwarder builds (veth made in the client netns with
 *   its peer straight in the endpoint netns, alias, address, up and route on each end), through the same executor
 *   mode as the forwarder's;
 * - N sequential Requests: client call → the call returns, which is when the interface is up in the client netns
 *   (the forwarder programs it before answering; each sample is checked afterwards, outside the timing); p50/p99;
 * - C concurrent Requests: wall time of the burst;
 * - L live connections: setup rate (32 in flight), then one refresh period (0.4 × the token lifetime) with the
 *   refreshes counted and the forwarder's CPU (its own plus the `ip` processes it waited for), then the close rate.
 * Run as root: `npx tsc -b bench && node bench/dist/kernel-request.js [sequential=200] [concurrent=100] [live=1000]
 * [tokenLifetime=1m] [ipMode=persistent]`. Skips with a one-line reason otherwise.
 */
import type { ChildProcess } from "node:child_process";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { cpus, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { create } from "@bufbuild/protobuf";
import { type Connection, NetworkServiceRequestSchema } from "@nsm-ts/api/networkservice";
import { duration as parseDuration } from "@nsm-ts/base/config";
import { devIdentity } from "@nsm-ts/base/identity";
import { createTokenGenerator } from "@nsm-ts/base/token";
import { client, mechanisms } from "@nsm-ts/sdk/networkservice";
import {
  Batch,
  createIpExecutor,
  getLink,
  IP_MODES,
  type IpMode,
  netnsInodeUrl,
  openNetns,
  ownerAlias,
  runCommand,
} from "@nsm-ts/sdk-linux";
import { BenchNamespaces, requestCounter } from "./lib/netns.js";
import { ms, pool, program, stats, stopAll } from "./lib/procs.js";

const holders: ChildProcess[] = [];

const namespaces = new BenchNamespaces();
const netns = (suffix: string): Promise<string> => namespaces.add(suffix);

/** An unnamed netns held by a process (a pod), as `/proc/<pid>/ns/net`. */
async function pod(): Promise<string> {
  const child = spawn("unshare", ["--net", "sh", "-c", "echo ready; exec sleep 100000"], { stdio: ["ignore", "pipe", "ignore"] });
  holders.push(child);
  await once(child.stdout as NodeJS.ReadableStream, "data");
  return `/proc/${child.pid}/ns/net`;
}

/** CPU ms of `pid` including the children it waited for (the forwarder's `ip` and `nsenter` processes). */
function cpuWithChildrenMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // utime, stime, cutime, cstime (fields 14–17); USER_HZ is 100 on Linux.
  return (Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14])) * 10;
}

async function unavailable(): Promise<string | undefined> {
  if (process.platform !== "linux") return `not Linux (${process.platform})`;
  if (process.getuid?.() !== 0) return "not root (needs root or CAP_NET_ADMIN+CAP_SYS_ADMIN)";
  return undefined;
}

/** Baseline: the direct pair alone, `n` times, through an executor of `mode`; setup times in ms. */
async function directPair(n: number, mode: IpMode): Promise<number[]> {
  const exec = createIpExecutor({ mode });
  const [c, e] = await Promise.all([pod(), netns("be")]);
  const [cn, en] = await Promise.all([openNetns(c), openNetns(e)]);
  const out: number[] = [];
  try {
    for (let i = -3; i < n; i++) {
      const t0 = performance.now();
      const dev = "nsm-0";
      await new Batch(exec, cn)
        .addVeth({
          name: dev,
          peerName: dev,
          peerNetns: en,
          mtu: 1450,
          alias: ownerAlias({ owner: "b", connectionId: `${i}`, role: "client" }),
        })
        .addAddress(dev, "169.254.1.1/32")
        .setUp(dev)
        .addRoute({ dst: "169.254.1.2/32", dev }, { replace: true })
        .commit();
      await new Batch(exec, en)
        .setAlias(dev, ownerAlias({ owner: "b", connectionId: `${i}`, role: "endpoint" }))
        .addAddress(dev, "169.254.1.2/32")
        .setUp(dev)
        .addRoute({ dst: "169.254.1.1/32", dev }, { replace: true })
        .commit();
      if (i >= 0) out.push(performance.now() - t0);
      await new Batch(exec, cn).deleteLink(dev).commit();
    }
  } finally {
    exec.close?.();
  }
  return out;
}

async function main(): Promise<void> {
  const reason = await unavailable();
  if (reason !== undefined) {
    process.stdout.write(`kernel-request bench skipped: ${reason}\n`);
    return;
  }
  const sequential = Number(process.argv[2] ?? 200);
  const concurrent = Number(process.argv[3] ?? 100);
  const live = Number(process.argv[4] ?? 1000);
  const lifetime = process.argv[5] ?? "1m";
  const mode = (process.argv[6] ?? "persistent") as IpMode;
  if (!IP_MODES.includes(mode)) throw new Error(`ipMode must be one of ${IP_MODES.join(", ")}`);
  const lifetimeMs = parseDuration(lifetime);
  const periodMs = Math.ceil(0.4 * lifetimeMs);
  const dir = mkdtempSync(join(tmpdir(), "nsm-bench-kreq-"));
  const sock = (name: string): string => `unix://${join(dir, `${name}.sock`)}`;
  const phase = (what: string): boolean => process.stderr.write(`kernel-request bench: ${what}\n`);
  try {
    const base = await directPair(sequential, mode);
    phase("baseline done");

    const [node, ep] = await Promise.all([netns("node"), netns("ep")]);
    const common = { NSM_MAX_TOKEN_LIFETIME: lifetime };
    await program("cmd-registry", { ...common, NSM_NAME: "registry", NSM_LISTEN_ON: sock("registry") }, '"cmd-registry serving"', {
      netns: node,
    });
    await program(
      "cmd-nsmgr",
      { ...common, NSM_NAME: "nsmgr-1", NODE_NAME: "node-1", NSM_LISTEN_ON: sock("nsm"), NSM_REGISTRY_URL: sock("registry") },
      '"cmd-nsmgr serving"',
      { netns: node },
    );
    const forwarder = await program(
      "cmd-forwarder",
      {
        ...common,
        NSM_NAME: "forwarder-1",
        NSM_CONNECT_TO: sock("nsm"),
        NSM_LISTEN_ON: sock("forwarder"),
        NSM_FORWARDER_MECHANISM: "KERNEL",
        NSM_KERNEL_IP_MODE: mode,
        NSM_LEFTOVER_ADOPT_PERIOD: "0",
      },
      '"cmd-forwarder serving"',
      { netns: node },
    );
    await program(
      "cmd-endpoint",
      {
        ...common,
        NSM_NAME: "nse-kernel",
        NSM_CONNECT_TO: sock("nsm"),
        NSM_LISTEN_ON: sock("nse"),
        NSM_SERVICE_NAMES: "kbench",
        NSM_CIDR_PREFIX: "169.254.0.0/16",
      },
      '"cmd-endpoint serving"',
      { netns: ep },
    );
    phase("programs up");

    const counter = requestCounter();
    const nsc = client({
      name: "bench-nsc",
      connectTo: sock("nsm"),
      tokenGenerator: createTokenGenerator(await devIdentity("bench-nsc"), { maxTokenLifetimeMs: lifetimeMs }),
      insecure: true,
      heal: false,
      retry: false,
      additional: [counter.element],
    });
    const clientPath = await pod();
    const clientNs = await openNetns(clientPath);
    const url = netnsInodeUrl(clientPath);
    const check = createIpExecutor({ mode: "batch" });
    const req = (ifName: string) =>
      create(NetworkServiceRequestSchema, {
        connection: { networkService: "kbench" },
        mechanismPreferences: [mechanisms.kernel.mechanism({ netnsUrl: url, ifName })],
      });
    // Counted, not thrown: a wrong answer is a result of the run too.
    let notUp = 0;
    const up = async (ifName: string): Promise<void> => {
      if (!(await getLink(check, clientNs, ifName))?.up) notUp++;
    };

    // 1. Sequential: call → interface up (the call returns once the forwarder programmed it).
    for (let i = 0; i < 5; i++) await nsc.close(await nsc.request(req("nsm-w")));
    const seq: number[] = [];
    for (let i = 0; i < sequential; i++) {
      const t0 = performance.now();
      const c = await nsc.request(req("nsm-s"));
      seq.push(performance.now() - t0);
      await up("nsm-s");
      await nsc.close(c);
    }
    phase("sequential done");

    // 2. A burst of concurrent Requests, each its own interface.
    const tb = performance.now();
    const burst = await Promise.all(Array.from({ length: concurrent }, (_, i) => nsc.request(req(`nsm-c${i}`))));
    const burstMs = performance.now() - tb;
    for (let i = 0; i < concurrent; i++) await up(`nsm-c${i}`);
    await pool(burst, 32, (c) => nsc.close(c));
    phase("burst done");

    // 3. Live connections: setup, one refresh period, close.
    const fpid = forwarder.pid ?? 0;
    const t1 = performance.now();
    const conns = await pool(
      Array.from({ length: live }, (_, i) => i),
      32,
      (i) => nsc.request(req(`nsm-l${i.toString(36)}`)),
    );
    const setupRate = live / ((performance.now() - t1) / 1000);
    phase(`${live} live; measuring refreshes for ${periodMs} ms`);
    const r0 = counter.count();
    const cpu0 = cpuWithChildrenMs(fpid);
    const w0 = performance.now();
    await sleep(periodMs);
    const wallMs = performance.now() - w0;
    const refreshes = counter.count() - r0;
    const cpu = cpuWithChildrenMs(fpid) - cpu0;
    const t2 = performance.now();
    await pool(conns, 32, (c: Connection) => nsc.close(c));
    const closeRate = live / ((performance.now() - t2) / 1000);
    await nsc.dispose();
    const left = (await runCommand(clientNs.ipArgv(["-o", "link", "show"]))).stdout.split("\n").filter((l) => / nsm-/.test(l)).length;

    const b = stats(base);
    const s = stats(seq);
    process.stdout.write(
      [
        `machine: ${cpus()[0]?.model ?? "cpu"} × ${cpus().length}, node ${process.version}, load ${loadavg()
          .map((x) => x.toFixed(2))
          .join(" ")}; forwarder ip mode ${mode}; token lifetime ${lifetime}`,
        "",
        "| series | samples | p50 | p99 | p50 ratio |",
        "|---|---|---|---|---|",
        `| baseline: direct pair alone (kernel operations of one local cross-connect, ${mode}) | ${base.length} | ${ms(b.p50)} | ${ms(b.p99)} | 1 |`,
        `| KERNEL Request, client call → interface up in the client netns (target p50 ≤ 30 ms, p99 ≤ 60 ms) | ${seq.length} | ${ms(s.p50)} | ${ms(s.p99)} | ${(s.p50 / b.p50).toFixed(2)} × |`,
        "",
        "| series | value | target |",
        "|---|---|---|",
        `| ${concurrent} concurrent KERNEL Requests, wall time | ${ms(burstMs)} | ≤ 3 s for 100 |`,
        `| ${live} live KERNEL connections: setup rate (32 in flight) | ${setupRate.toFixed(1)} /s | — |`,
        `| refreshes in one period (${periodMs} ms) | ${refreshes} (${((refreshes * 1000) / wallMs).toFixed(1)} /s) | — |`,
        `| forwarder CPU over the period, with its ip processes | ${((cpu / wallMs) * 100).toFixed(2)} % of one core; ${refreshes > 0 ? (cpu / refreshes).toFixed(2) : "—"} ms per refresh | — |`,
        `| close rate (32 in flight) | ${closeRate.toFixed(1)} /s | — |`,
        `| Requests answered without their interface up in the client netns (sequential and concurrent) | ${notUp} | 0 |`,
        `| interfaces left in the client netns after closing | ${left} | 0 |`,
        "",
      ].join("\n"),
    );
  } finally {
    await stopAll();
    for (const h of holders) h.kill("SIGKILL");
    await namespaces.removeAll();
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
