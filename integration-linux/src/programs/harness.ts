/**
 * Drives the real nsm-ts programs as processes for black-box tests and benchmarks: spawn a program with a clean
 * environment, read its pino JSON log lines, wait for a given message, stop it with a signal, and make sure
 * nothing outlives the test (`stopAll` in afterEach, `running()` is then 0). Sockets go to one temp directory per
 * `ProgramSet`, tcp to free loopback ports.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { freePort } from "@nsm-ts/testing/net";
import { expect } from "chai";

export { freePort };

/** The repository root (integration-linux/dist/programs → ../../..). */
export const repoRoot = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "..");

/** The programs this harness can start, each a workspace folder with `bin/<name>.js`. */
export const PROGRAMS = [
  "cmd-registry",
  "cmd-nsmgr",
  "cmd-nsmgr-proxy",
  "cmd-forwarder",
  "cmd-endpoint",
  "cmd-nsc",
  "cmd-nse-vl3",
  "cmd-traffic-controller",
] as const;
/** One of `PROGRAMS`. */
export type ProgramName = (typeof PROGRAMS)[number];

/** One pino log record (the fields the tests read). */
export interface LogRecord {
  level: number;
  msg: string;
  [field: string]: unknown;
}

/** Variables the programs read that must not leak in from the test runner's environment. */
function cleanEnv(vars: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const k of Object.keys(env)) {
    if (k.startsWith("NSM_") || ["NODE_NAME", "POD_NAME", "CLUSTER_NAME", "TELEMETRY"].includes(k)) delete env[k];
  }
  return { ...env, NSM_LOG_LEVEL: "INFO", ...vars };
}

/** A running program: its process, its log records so far, and waits on them. */
export class Program {
  readonly records: LogRecord[] = [];
  private stderrText = "";
  private waiters: Array<{ match: (r: LogRecord) => boolean; resolve: (r: LogRecord) => void }> = [];
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

  constructor(
    readonly name: string,
    readonly child: ChildProcess,
  ) {
    this.exited = once(child, "exit").then(([code, signal]) => ({ code: code as number | null, signal: signal as NodeJS.Signals | null }));
    let buf = "";
    child.stdout?.setEncoding("utf8");
    child.stdout?.on("data", (s: string) => {
      buf += s;
      for (let i = buf.indexOf("\n"); i >= 0; i = buf.indexOf("\n")) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        try {
          this.onRecord(JSON.parse(line) as LogRecord);
        } catch {
          this.stderrText += `${line}\n`;
        }
      }
    });
    child.stderr?.setEncoding("utf8");
    child.stderr?.on("data", (s: string) => (this.stderrText += s));
  }

  private onRecord(r: LogRecord): void {
    this.records.push(r);
    for (const w of [...this.waiters]) {
      if (w.match(r)) {
        this.waiters.splice(this.waiters.indexOf(w), 1);
        w.resolve(r);
      }
    }
  }

  /** True while the process runs. */
  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /**
   * The first record (already seen or still to come) with message `msg` that `match` accepts; rejects when the
   * process exits first or after `timeoutMs`.
   */
  waitFor(msg: string, match: (r: LogRecord) => boolean = () => true, timeoutMs = 15_000): Promise<LogRecord> {
    const m = (r: LogRecord): boolean => r.msg === msg && match(r);
    const seen = this.records.find(m);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const w = {
        match: m,
        resolve: (r: LogRecord) => {
          clearTimeout(timer);
          resolve(r);
        },
      };
      const timer = setTimeout(() => {
        this.waiters.splice(this.waiters.indexOf(w), 1);
        reject(new Error(`${this.name}: no "${msg}" within ${timeoutMs} ms; output:\n${this.output()}`));
      }, timeoutMs);
      this.waiters.push(w);
      void this.exited.then(({ code, signal }) => {
        if (!this.waiters.includes(w)) return;
        this.waiters.splice(this.waiters.indexOf(w), 1);
        clearTimeout(timer);
        reject(new Error(`${this.name} exited (${signal ?? code}) before "${msg}"; output:\n${this.output()}`));
      });
    });
  }

  /** The log so far (messages and stderr), for failure messages. */
  output(): string {
    const lines = this.records.map((r) => `${r.level} ${r.msg} ${r.err ? JSON.stringify(r.err) : ""}`);
    return [...lines.slice(-30), this.stderrText.slice(-2000)].join("\n");
  }

  /** Sends `signal` and waits for the exit. */
  async stop(signal: NodeJS.Signals = "SIGTERM"): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    if (this.running) this.child.kill(signal);
    return this.exited;
  }
}

/** Starts programs for one test or benchmark and owns their temp directory. */
export class ProgramSet {
  readonly dir = mkdtempSync(join(tmpdir(), "nsm-programs-"));
  private readonly all = new Set<Program>();

  /** `unix://<temp dir>/<name>`. */
  socket(name: string): string {
    return `unix://${join(this.dir, name)}`;
  }

  /** Spawns `program` with `vars` (and nothing else from our environment that it reads). */
  spawn(program: ProgramName, vars: Record<string, string>, name: string = program): Program {
    const bin = join(repoRoot, program, "bin", `${program}.js`);
    const child = spawn(process.execPath, [bin], { env: cleanEnv(vars), stdio: ["ignore", "pipe", "pipe"] });
    const p = new Program(name, child);
    this.all.add(p);
    return p;
  }

  /** Spawns and waits for the program's `readyMsg` log line. */
  async start(program: ProgramName, vars: Record<string, string>, readyMsg: string, name: string = program): Promise<Program> {
    const p = this.spawn(program, vars, name);
    await p.waitFor(readyMsg);
    return p;
  }

  /** Programs still running. */
  running(): number {
    return [...this.all].filter((p) => p.running).length;
  }

  /** Kills every program (SIGKILL), waits for them, removes the temp directory. */
  async stopAll(): Promise<void> {
    await Promise.all([...this.all].map((p) => p.stop("SIGKILL")));
    this.all.clear();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** A started node: its nsmgr (unix socket for local programs, tcp for other nodes) and forwarder. */
export interface MeshNode {
  nsmgr: Program;
  forwarder: Program;
  /** The unix socket local clients and endpoints use. */
  socket: string;
  /** The nsmgr's tcp URL. */
  tcpUrl: string;
}

/** Starts cmd-registry on a free port; resolves with it and its URL. */
export async function startRegistry(set: ProgramSet, vars: Record<string, string> = {}): Promise<{ registry: Program; url: string }> {
  const url = `tcp://127.0.0.1:${await freePort()}`;
  const registry = await set.start(
    "cmd-registry",
    { NSM_NAME: "registry", NSM_LISTEN_ON: url, ...vars },
    "cmd-registry serving",
    "registry",
  );
  return { registry, url };
}

/** Starts node `n`: cmd-nsmgr on a unix socket and a free tcp port, then its NOOP cmd-forwarder. */
export async function startNode(set: ProgramSet, n: number, registryUrl: string, vars: Record<string, string> = {}): Promise<MeshNode> {
  const socket = set.socket(`nsm-${n}.sock`);
  const tcpUrl = `tcp://127.0.0.1:${await freePort()}`;
  const nsmgr = await set.start(
    "cmd-nsmgr",
    { NSM_NAME: `nsmgr-${n}`, NODE_NAME: `node-${n}`, NSM_LISTEN_ON: `${socket},${tcpUrl}`, NSM_REGISTRY_URL: registryUrl, ...vars },
    "cmd-nsmgr serving",
    `nsmgr-${n}`,
  );
  const forwarder = await set.start(
    "cmd-forwarder",
    // Sockets inside the set's directory, so a SIGKILLed program leaves nothing behind after stopAll.
    {
      NSM_NAME: `forwarder-${n}`,
      NSM_CONNECT_TO: socket,
      NSM_LISTEN_ON: set.socket(`forwarder-${n}.sock`),
      NSM_FORWARDER_MECHANISM: "NOOP",
      ...vars,
    },
    "cmd-forwarder serving",
    `forwarder-${n}`,
  );
  return { nsmgr, forwarder, socket, tcpUrl };
}

/** Starts a cmd-endpoint for `service` registered at `nsmgrSocket`. */
export function startEndpoint(
  set: ProgramSet,
  name: string,
  nsmgrSocket: string,
  service: string,
  vars: Record<string, string> = {},
): Promise<Program> {
  return set.start(
    "cmd-endpoint",
    {
      NSM_NAME: name,
      NSM_CONNECT_TO: nsmgrSocket,
      NSM_LISTEN_ON: set.socket(`${name}.sock`),
      NSM_SERVICE_NAMES: service,
      NSM_CIDR_PREFIX: "169.254.10.0/24",
      ...vars,
    },
    "cmd-endpoint serving",
    name,
  );
}

/**
 * The hooks every program suite shares: a fresh ProgramSet per test (handed to `set`), and after each test every
 * program killed, the temp directory removed, and nothing left running.
 */
export function useProgramSet(set: (programs: ProgramSet) => void): void {
  let current: ProgramSet | undefined;
  beforeEach(() => {
    current = new ProgramSet();
    set(current);
  });
  afterEach(async () => {
    await current?.stopAll();
    expect(current?.running()).to.equal(0);
  });
}
