/**
 * vL3: time from a client's Request to its first ping of a vL3 member on another node, against the same for a
 * member on the client's own node (the baseline, measured in the same run). Two node namespaces joined by a veth
 * underlay (198.51.100.1 ↔ .2), each running cmd-nsmgr and a KERNEL cmd-forwarder; cmd-registry serves the prefix
 * pool 169.254.0.0/16; one cmd-nse-vl3 per node. A member pod on node 1 stays connected; each round starts cmd-nsc
 * in a fresh pod on node 1 (local) or node 2 (remote), and a loop in that pod pings the member until a reply. The
 * time runs from cmd-nsc's "requesting" log line to the reply's timestamp (`ping -D`), both wall clock on this
 * machine; the ping loop retries every ~5 ms, which bounds the error.
 * Run as root: `npx tsc -b bench && node bench/dist/vl3.js [rounds]` (default 20 per series). Skips otherwise.
 */
import type { ChildProcess } from "node:child_process";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { cpus, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { runCommand } from "@nsm-ts/sdk-linux";
import { BenchNamespaces, ip } from "./lib/netns.js";
import { ms, program, stats, stop, stopAll } from "./lib/procs.js";

const SERVICE = "vl3-bench";
const POOL = "169.254.0.0/16";

const namespaces = new BenchNamespaces();
const netns = (suffix: string): Promise<string> => namespaces.add(suffix);

async function unavailable(): Promise<string | undefined> {
  if (process.platform !== "linux") return `not Linux (${process.platform})`;
  if (process.getuid?.() !== 0) return "not root (needs root or CAP_NET_ADMIN+CAP_SYS_ADMIN)";
  const r = await runCommand(["ping", "-V"]).catch(() => undefined);
  if (r?.code !== 0) return "ping is not installed (apt-get install iputils-ping)";
  return undefined;
}

/** Non-loopback links in `ns`. */
async function linkCount(ns: string): Promise<number> {
  const r = await runCommand(["ip", "-n", ns, "-j", "link", "show"]);
  return (JSON.parse(r.stdout || "[]") as Array<{ ifname: string }>).filter((l) => l.ifname !== "lo").length;
}

async function until(what: string, probe: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await probe())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * Pings `addr` from `ns` until a reply; resolves with the reply's wall-clock time in ms. Each try is one ping
 * process with a short wait, since ping exits at once while the route is missing.
 */
function pingLoop(ns: string, addr: string): { first: Promise<number>; child: ChildProcess } {
  const script = `while ! ping -D -n -c1 -W0.2 ${addr}; do sleep 0.005; done`;
  const child = spawn("ip", ["netns", "exec", ns, "sh", "-c", script], { stdio: ["ignore", "pipe", "ignore"] });
  let out = "";
  const first = new Promise<number>((resolve, reject) => {
    child.stdout?.setEncoding("utf8").on("data", (s: string) => {
      out += s;
      const m = /\[(\d+\.\d+)\] \d+ bytes from/.exec(out);
      if (m) resolve(Number(m[1]) * 1000);
    });
    child.once("exit", () => reject(new Error(`ping loop in ${ns} ended without a reply`)));
  });
  first.catch(() => {});
  return { first, child };
}

/** One round: a client pod on `nsmSock`'s node requests, pings `member`, leaves. Returns Request → first reply, ms. */
async function round(pod: string, nsmSock: string, member: string, name: string): Promise<number> {
  let requestedAt: number | undefined;
  const ping = pingLoop(pod, member);
  const nsc = await program(
    "cmd-nsc",
    { NSM_NAME: name, NSM_CONNECT_TO: nsmSock, NSM_NETWORK_SERVICES: `kernel://${SERVICE}/nsm-1` },
    '"msg":"connected"',
    {
      netns: pod,
      onLine: (l) => {
        if (requestedAt === undefined && l.includes('"msg":"requesting"')) requestedAt = (JSON.parse(l) as { time: number }).time;
      },
    },
  );
  try {
    const replyAt = await Promise.race([
      ping.first,
      new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`${name}: no ping reply within 20 s`)), 20_000).unref()),
    ]);
    if (requestedAt === undefined) throw new Error(`${name}: no "requesting" log line`);
    return replyAt - requestedAt;
  } finally {
    ping.child.kill("SIGKILL");
    await stop(nsc, "SIGTERM");
    await until(`${pod} without links`, async () => (await linkCount(pod)) === 0, 20_000);
  }
}

async function main(): Promise<void> {
  const reason = await unavailable();
  if (reason !== undefined) {
    process.stdout.write(`vl3 bench skipped: ${reason}\n`);
    return;
  }
  const rounds = Number(process.argv[2] ?? 20);
  const dir = mkdtempSync(join(tmpdir(), "nsm-bench-vl3-"));
  const sock = (name: string): string => `unix://${join(dir, `${name}.sock`)}`;
  const phase = (what: string): boolean => process.stderr.write(`vl3 bench: ${what}\n`);
  try {
    const [n1, n2, e1, e2, member, local, remote] = await Promise.all(["n1", "n2", "e1", "e2", "m", "cl", "cr"].map(netns));
    await ip("-n", n1 as string, "link", "add", "underlay", "type", "veth", "peer", "name", "underlay", "netns", n2 as string);
    for (const [n, addr] of [
      [n1, "198.51.100.1/24"],
      [n2, "198.51.100.2/24"],
    ] as const) {
      await ip("-n", n as string, "addr", "add", addr, "dev", "underlay");
      await ip("-n", n as string, "link", "set", "underlay", "up");
    }
    const registryUrl = "tcp://198.51.100.1:5002";
    const node = async (n: 1 | 2, where: string): Promise<void> => {
      const tunnelIp = `198.51.100.${n}`;
      await Promise.all([
        program(
          "cmd-nsmgr",
          {
            NSM_NAME: `nsmgr-${n}`,
            NODE_NAME: `node-${n}`,
            NSM_LISTEN_ON: `${sock(`nsm-${n}`)},tcp://${tunnelIp}:5001`,
            NSM_REGISTRY_URL: registryUrl,
          },
          '"cmd-nsmgr serving"',
          { netns: where },
        ),
        program(
          "cmd-forwarder",
          {
            NSM_NAME: `forwarder-${n}`,
            NSM_CONNECT_TO: sock(`nsm-${n}`),
            NSM_LISTEN_ON: sock(`forwarder-${n}`),
            NSM_FORWARDER_MECHANISM: "KERNEL",
            NSM_TUNNEL_IP: tunnelIp,
          },
          '"cmd-forwarder serving"',
          { netns: where },
        ),
      ]);
    };
    await Promise.all([
      program(
        "cmd-registry",
        {
          NSM_NAME: "registry",
          NSM_LISTEN_ON: `${registryUrl},${sock("registry")}`,
          NSM_IPAM_PREFIX_POOL: POOL,
          NSM_IPAM_PREFIX_LENGTH: "24",
        },
        '"cmd-registry serving"',
        { netns: n1 },
      ),
      node(1, n1 as string),
      node(2, n2 as string),
    ]);
    const vl3 = (n: 1 | 2, where: string): Promise<ChildProcess> =>
      program(
        "cmd-nse-vl3",
        {
          NSM_NAME: `vl3-${n}`,
          NSM_CONNECT_TO: sock(`nsm-${n}`),
          NSM_LISTEN_ON: sock(`vl3-${n}`),
          NSM_SERVICE_NAMES: SERVICE,
          NSM_PREFIX_SERVER_URL: sock("registry"),
          NSM_VL3_PREFIX: POOL,
        },
        '"cmd-nse-vl3 serving"',
        { netns: where },
      );
    await Promise.all([vl3(1, e1 as string), vl3(2, e2 as string)]);
    // The member: a client pod on node 1 that stays connected for the whole run.
    let memberAddr = "";
    await program(
      "cmd-nsc",
      { NSM_NAME: "member", NSM_CONNECT_TO: sock("nsm-1"), NSM_NETWORK_SERVICES: `kernel://${SERVICE}/nsm-1` },
      '"msg":"connected"',
      {
        netns: member,
        onLine: (l) => {
          if (!l.includes('"msg":"connected"')) return;
          const c = (JSON.parse(l) as { connection?: { context?: { ipContext?: { srcIpAddrs?: string[] } }; srcIpAddrs?: string[] } })
            .connection;
          memberAddr = (c?.context?.ipContext?.srcIpAddrs?.[0] ?? c?.srcIpAddrs?.[0] ?? "").split("/")[0] ?? "";
        },
      },
    );
    if (memberAddr === "") throw new Error("the member's connected log line carries no source address");
    phase(`mesh up, member ${memberAddr}`);

    const series: Record<"local" | "remote", number[]> = { local: [], remote: [] };
    // One warm-up round each (first VXLAN/peer set-up, module caches), then alternate so load hits both alike.
    await round(local as string, sock("nsm-1"), memberAddr, "warm-l");
    await round(remote as string, sock("nsm-2"), memberAddr, "warm-r");
    for (let i = 0; i < rounds; i++) {
      series.local.push(await round(local as string, sock("nsm-1"), memberAddr, `l-${i}`));
      series.remote.push(await round(remote as string, sock("nsm-2"), memberAddr, `r-${i}`));
      phase(`round ${i + 1}/${rounds}`);
    }
    const l = stats(series.local);
    const r = stats(series.remote);
    process.stdout.write(
      [
        `machine: ${cpus().length} cores, load ${loadavg()
          .map((x) => x.toFixed(2))
          .join(" ")}; ${rounds} rounds per series`,
        "| series (Request → first ping reply from a vL3 member) | p50 | p99 | p50 ratio |",
        "|---|---|---|---|",
        `| member on the client's node (baseline) | ${ms(l.p50)} | ${ms(l.p99)} | 1 |`,
        `| member on the other node (VXLAN between the vL3 endpoints) | ${ms(r.p50)} | ${ms(r.p99)} | ${(r.p50 / l.p50).toFixed(2)} × local |`,
        "",
      ].join("\n"),
    );
  } finally {
    await stopAll();
    await namespaces.removeAll();
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
