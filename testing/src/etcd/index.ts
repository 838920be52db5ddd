/**
 * Test harness for code that talks to etcd: starts a private single-member etcd on free loopback ports with a
 * temporary data directory, and removes both on stop. Tests call `etcdAvailable()` first and skip with its reason
 * when the binary is missing, so the suite still runs on machines without etcd.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { accessSync, constants as fsConstants } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { get as httpGet } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Etcd3 } from "etcd3";
import { freePorts } from "../net/index.js";

/** Where Debian's `etcd-server` package (and our CI) installs the binary. */
export const DEFAULT_ETCD_BINARY = "/usr/bin/etcd";

/** Options of `startEtcd`. */
export interface StartEtcdOptions {
  /** Path of the etcd binary; default `/usr/bin/etcd`. */
  binary?: string;
  /** How long to wait for the member to answer on its client port; default 20 000 ms. */
  startTimeoutMs?: number;
  /**
   * Raft heartbeat in ms; default 50. With the election timeout it sets etcd's minimum lease TTL (1.5 election
   * timeouts), so the small defaults here let tests use 1 s leases.
   */
  heartbeatIntervalMs?: number;
  /** Raft election timeout in ms; default 500. */
  electionTimeoutMs?: number;
  /**
   * Parent directory of the data directory; default the OS temp dir. Benchmarks pass a tmpfs (`/dev/shm`) to take
   * disk fsync latency out of the numbers.
   */
  tmpDir?: string;
}

/** A running etcd started by `startEtcd`. */
export interface EtcdInstance {
  /** Client URLs, e.g. `http://127.0.0.1:40123`, ready for `new Etcd3({ hosts })`. */
  endpoints: string[];
  /** The temporary data directory (removed by `stop`). */
  dataDir: string;
  /** Stops the process (SIGTERM, then SIGKILL after 5 s) and removes its data directory. */
  stop(): Promise<void>;
  /** Stops the process and starts it again on the same ports and data, as a crash-and-restart would. */
  restart(): Promise<void>;
}

/** Result of `etcdAvailable`: whether tests can run, and a one-line reason when they cannot. */
export interface EtcdAvailability {
  available: boolean;
  reason: string;
}

/** Checks that the etcd binary exists and is executable, so a test can `this.skip()` with the reason. */
export function etcdAvailable(binary: string = DEFAULT_ETCD_BINARY): EtcdAvailability {
  try {
    accessSync(binary, fsConstants.X_OK);
    return { available: true, reason: "" };
  } catch {
    return { available: false, reason: `etcd binary not found at ${binary} (install Debian's etcd-server)` };
  }
}

/** Starts a fresh single-member etcd on loopback and resolves once its `/health` endpoint reports healthy. */
export async function startEtcd(opts: StartEtcdOptions = {}): Promise<EtcdInstance> {
  const binary = opts.binary ?? DEFAULT_ETCD_BINARY;
  const check = etcdAvailable(binary);
  if (!check.available) throw new Error(`etcdtest: ${check.reason}`);
  const dataDir = await mkdtemp(join(opts.tmpDir ?? tmpdir(), "nsm-ts-etcd-"));
  const [clientPort, peerPort] = await freePorts(2);
  const clientUrl = `http://127.0.0.1:${clientPort}`;
  const peerUrl = `http://127.0.0.1:${peerPort}`;
  const env: NodeJS.ProcessEnv = { ...process.env };
  // etcd 3.4 refuses to start on architectures other than amd64/arm64 unless told to.
  if (process.arch !== "x64" && process.arch !== "arm64") env.ETCD_UNSUPPORTED_ARCH = goArch(process.arch);
  const args = [
    "--name=nsm-ts-test",
    `--data-dir=${dataDir}`,
    `--listen-client-urls=${clientUrl}`,
    `--advertise-client-urls=${clientUrl}`,
    `--listen-peer-urls=${peerUrl}`,
    `--initial-advertise-peer-urls=${peerUrl}`,
    `--initial-cluster=nsm-ts-test=${peerUrl}`,
    "--initial-cluster-state=new",
    `--heartbeat-interval=${opts.heartbeatIntervalMs ?? 50}`,
    `--election-timeout=${opts.electionTimeoutMs ?? 500}`,
    "--logger=zap",
    "--log-level=error",
  ];
  const startTimeoutMs = opts.startTimeoutMs ?? 20_000;
  let proc: Launched | undefined;
  let stopped = false;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    if (proc !== undefined) await terminate(proc.child, proc.exited);
    await rm(dataDir, { recursive: true, force: true });
  };
  const launch = async (): Promise<void> => {
    proc = spawnEtcd(binary, args, env);
    try {
      await waitHealthy(clientUrl, startTimeoutMs, proc.child);
    } catch (err) {
      const stderr = proc.stderr();
      await stop();
      throw new Error(`etcdtest: etcd did not start: ${(err as Error).message}; stderr: ${stderr.trim()}`);
    }
  };
  const restart = async (): Promise<void> => {
    if (stopped) throw new Error("etcdtest: restart after stop");
    if (proc !== undefined) await terminate(proc.child, proc.exited);
    await launch();
  };
  await launch();
  return { endpoints: [clientUrl], dataDir, stop, restart };
}

interface Launched {
  child: ChildProcess;
  exited: Promise<void>;
  stderr(): string;
}

function spawnEtcd(binary: string, args: string[], env: NodeJS.ProcessEnv): Launched {
  const child = spawn(binary, args, { env, stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  child.stderr?.setEncoding("utf8");
  child.stderr?.on("data", (chunk: string) => {
    stderr = (stderr + chunk).slice(-4000);
  });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  return { child, exited, stderr: () => stderr };
}

async function terminate(child: ChildProcess, exited: Promise<void>): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill("SIGTERM");
  let timer: NodeJS.Timeout | undefined;
  const killed = new Promise<void>((resolve) => {
    timer = setTimeout(() => {
      child.kill("SIGKILL");
      resolve();
    }, 5000);
  });
  await Promise.race([exited, killed]);
  clearTimeout(timer);
  await exited;
}

/** Polls `GET /health` until etcd answers `"health":"true"` (it has a leader); fails early when the process exits. */
async function waitHealthy(url: string, timeoutMs: number, child: ChildProcess): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`process exited with ${child.exitCode ?? child.signalCode}`);
    }
    if (await healthy(url)) return;
    if (Date.now() > deadline) throw new Error(`${url}/health not healthy after ${timeoutMs} ms`);
    await new Promise<void>((resolve) => setTimeout(resolve, 50));
  }
}

function healthy(url: string): Promise<boolean> {
  return new Promise<boolean>((resolve) => {
    const req = httpGet(`${url}/health`, { timeout: 1000 }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => {
        body += c;
      });
      res.on("end", () => resolve(res.statusCode === 200 && /"health":\s*"true"/.test(body)));
      res.on("error", () => resolve(false));
    });
    req.on("timeout", () => req.destroy());
    req.on("error", () => resolve(false));
  });
}

function goArch(nodeArch: string): string {
  const map: Record<string, string> = { ia32: "386", arm: "arm", ppc64: "ppc64le", s390x: "s390x", riscv64: "riscv64" };
  return map[nodeArch] ?? nodeArch;
}

/** Options of `seedEtcd`. */
export interface SeedEtcdOptions {
  /** Puts per transaction; default 128 (etcd's default `--max-txn-ops`). */
  batch?: number;
  /** Transactions in flight at once; default 8. */
  inFlight?: number;
}

/**
 * Writes many keys fast (batched transactions, no leases), for tests and benchmarks that need a large data set in
 * place before measuring; resolves to the etcd revision after the last write.
 */
export async function seedEtcd(
  endpoints: string[],
  entries: Iterable<readonly [key: string, value: Uint8Array]>,
  opts: SeedEtcdOptions = {},
): Promise<string> {
  const batch = opts.batch ?? 128;
  const client = new Etcd3({ hosts: endpoints });
  try {
    const it = entries[Symbol.iterator]();
    let revision = "0";
    let done = false;
    const nextBatch = (): Array<readonly [string, Uint8Array]> => {
      const out: Array<readonly [string, Uint8Array]> = [];
      while (!done && out.length < batch) {
        const r = it.next();
        if (r.done === true) done = true;
        else out.push(r.value);
      }
      return out;
    };
    const worker = async (): Promise<void> => {
      for (let b = nextBatch(); b.length > 0; b = nextBatch()) {
        const res = await client.kv.txn({
          success: b.map(([key, value]) => ({ request_put: { key: Buffer.from(key), value: Buffer.from(value) } })),
        });
        if (BigInt(res.header.revision) > BigInt(revision)) revision = res.header.revision;
      }
    };
    await Promise.all(Array.from({ length: opts.inFlight ?? 8 }, worker));
    return revision;
  } finally {
    client.close();
  }
}
