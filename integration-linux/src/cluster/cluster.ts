/**
 * Helpers for the end-to-end kernel acceptance tests: the real programs as processes, each either on the host or
 * inside a network namespace the test created (`ip netns exec <ns> node …`, which execs, so the pid we hold is the
 * program itself and `/proc/<pid>/ns/net` names its namespace), plus polling of `ip -j` state with a deadline.
 */
import { spawn } from "node:child_process";
import { join } from "node:path";
import { runCommand } from "@nsm-ts/sdk-linux";
import type { KernelFixture } from "../kernel/fixture.js";
import { Program, type ProgramName, repoRoot } from "../programs/harness.js";

/** Variables the programs read that must not leak in from the test runner's environment. */
function cleanEnv(vars: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const k of Object.keys(env)) {
    if (k.startsWith("NSM_") || ["NODE_NAME", "POD_NAME", "CLUSTER_NAME", "TELEMETRY"].includes(k)) delete env[k];
  }
  return { ...env, NSM_LOG_LEVEL: "INFO", ...vars };
}

/** Programs started by one test, each optionally inside a named netns; `killAll` in afterEach. */
export class Processes {
  readonly all: Program[] = [];

  /**
   * Spawns `program` with `vars`, inside named netns `ns` when given; with `ownPidNamespace` also in a new PID
   * (and mount, for its own /proc) namespace where it is pid 1, as in a pod. Killing the held process
   * (`unshare`) then kills the program too (`--kill-child`).
   */
  spawn(program: ProgramName, vars: Record<string, string>, name: string, ns?: string, opts: { ownPidNamespace?: boolean } = {}): Program {
    const bin = join(repoRoot, program, "bin", `${program}.js`);
    const node = opts.ownPidNamespace
      ? ["unshare", "--pid", "--fork", "--mount-proc", "--kill-child=SIGKILL", process.execPath, bin]
      : [process.execPath, bin];
    const full = ns === undefined ? node : ["ip", "netns", "exec", ns, ...node];
    const child = spawn(full[0] ?? "", full.slice(1), { env: cleanEnv(vars), stdio: ["ignore", "pipe", "pipe"] });
    const p = new Program(name, child);
    this.all.push(p);
    return p;
  }

  /** Spawns and waits for `readyMsg`. */
  async start(
    program: ProgramName,
    vars: Record<string, string>,
    readyMsg: string,
    name: string,
    ns?: string,
    timeoutMs = 30_000,
    opts: { ownPidNamespace?: boolean } = {},
  ): Promise<Program> {
    const p = this.spawn(program, vars, name, ns, opts);
    await p.waitFor(readyMsg, () => true, timeoutMs);
    return p;
  }

  /** SIGKILLs everything still running and waits for the exits. */
  async killAll(): Promise<void> {
    await Promise.all(this.all.map((p) => p.stop("SIGKILL")));
    this.all.length = 0;
  }
}

/** One link as `ip -j addr` reports it (the fields the tests read). */
export interface LinkInfo {
  ifindex: number;
  ifname: string;
  mtu: number;
  operstate: string;
  addr_info: Array<{ family: string; local: string; prefixlen: number }>;
}

/** Every link in named netns `ns` (or the host's when undefined), loopback excluded. */
export async function links(ns?: string): Promise<LinkInfo[]> {
  const r = await runCommand(ns === undefined ? ["ip", "-j", "addr", "show"] : ["ip", "-n", ns, "-j", "addr", "show"]);
  if (r.code !== 0) throw new Error(`ip addr show in ${ns ?? "host"}: ${r.stderr}`);
  return (JSON.parse(r.stdout || "[]") as LinkInfo[]).filter((l) => l.ifname !== "lo");
}

/** Polls `probe` every `intervalMs` until it returns a value other than undefined; throws `what` after `timeoutMs`. */
export async function waitUntil<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 30_000, intervalMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/** `ping -c1 -W1 <addr>` inside named netns `ns`; true when a reply came back. */
export async function pingFrom(ns: string, addr: string): Promise<boolean> {
  const r = await runCommand(["ip", "netns", "exec", ns, "ping", "-c1", "-W1", "-n", addr]);
  return r.code === 0;
}

/** An address without its prefix length. */
export function bare(cidr: string): string {
  return cidr.split("/")[0] ?? cidr;
}

/** Runs `ip <args>` and throws on failure. */
export async function ip(...args: string[]): Promise<void> {
  const r = await runCommand(["ip", ...args]);
  if (r.code !== 0) throw new Error(`ip ${args.join(" ")}: ${r.stderr.trim()}`);
}

/** One namespace per role (from `fx`, so its cleanup removes them), each with loopback up; role → netns name. */
export async function roleNamespaces<R extends string>(fx: KernelFixture, roles: readonly R[]): Promise<Record<R, string>> {
  const out = {} as Record<R, string>;
  for (const role of roles) {
    await fx.netns(role);
    out[role] = fx.names.at(-1) ?? "";
    await ip("-n", out[role], "link", "set", "lo", "up");
  }
  return out;
}

/** Joins node namespaces `n1` and `n2` with a veth named `underlay` each side, 198.51.100.1/24 ↔ 198.51.100.2/24. */
export async function underlay(n1: string, n2: string): Promise<void> {
  await ip("-n", n1, "link", "add", "underlay", "type", "veth", "peer", "name", "underlay", "netns", n2);
  for (const [n, addr] of [
    [n1, "198.51.100.1/24"],
    [n2, "198.51.100.2/24"],
  ] as const) {
    await ip("-n", n, "addr", "add", addr, "dev", "underlay");
    await ip("-n", n, "link", "set", "underlay", "up");
  }
}

/** Where {@link startKernelNode} starts node `n`'s programs. */
export interface KernelNode {
  n: 1 | 2;
  /** The node's named netns (its underlay address is 198.51.100.<n>). */
  netns: string;
  /** `unix://…` URL of a socket named `name` in the test's temporary directory. */
  sock: (name: string) => string;
  registryUrl: string;
  /** Extra variables for the forwarder (e.g. the services data plane's). */
  forwarderEnv?: Record<string, string>;
  startMs: number;
}

/**
 * Starts node `n`: cmd-nsmgr (`nsmgr-<n>`, on socket `nsm-<n>` and tcp 198.51.100.<n>:5001) and a KERNEL
 * cmd-forwarder (`forwarder-<n>`) whose tunnel IP is the node's underlay address.
 */
export async function startKernelNode(procs: Processes, node: KernelNode): Promise<void> {
  const { n, netns, sock, registryUrl, startMs } = node;
  const tunnelIp = `198.51.100.${n}`;
  await Promise.all([
    procs.start(
      "cmd-nsmgr",
      {
        NSM_NAME: `nsmgr-${n}`,
        NODE_NAME: `node-${n}`,
        NSM_LISTEN_ON: `${sock(`nsm-${n}`)},tcp://${tunnelIp}:5001`,
        NSM_REGISTRY_URL: registryUrl,
      },
      "cmd-nsmgr serving",
      `nsmgr-${n}`,
      netns,
      startMs,
    ),
    procs.start(
      "cmd-forwarder",
      {
        NSM_NAME: `forwarder-${n}`,
        NSM_CONNECT_TO: sock(`nsm-${n}`),
        NSM_LISTEN_ON: sock(`forwarder-${n}`),
        NSM_FORWARDER_MECHANISM: "KERNEL",
        NSM_TUNNEL_IP: tunnelIp,
        ...node.forwarderEnv,
      },
      "cmd-forwarder serving",
      `forwarder-${n}`,
      netns,
      startMs,
    ),
  ]);
}
