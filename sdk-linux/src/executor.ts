/**
 * The one place that decides how changes reach the kernel: a long-lived `ip -force -batch -` per namespace fed line
 * by line (`persistent`, the default; ip-session.ts: no process start per commit), all `ip` lines of one commit in
 * a single `ip -batch -` process (`batch`), or one `ip` process per line (kept for comparison and debugging; see
 * bench/RESULTS.md "Kernel operations"). Callers only see `IpExecutor`.
 */
import { stat } from "node:fs/promises";
import { type Clock, realClock } from "@nsm-ts/base/clock";
import type { Logger } from "@nsm-ts/base/log";
import { Code, StatusError } from "@nsm-ts/base/status";
import { type CommandRunner, runCommand } from "./exec.js";
import { IpSession, NOT_INSTALLED, type SessionResult, SessionRetired } from "./ip-session.js";
import type { Netns, NetnsTools } from "./netns.js";

/**
 * `persistent` (default): one long-lived `ip -force -batch -` per namespace, ended after `idleMs` without work
 * (queries still start a process); `batch`: one process per namespace per commit; `per-command`: one process per
 * change.
 */
export type IpMode = "batch" | "per-command" | "persistent";

/** One `ip` command (without the leading `ip`) and what it does, for error messages. */
export interface IpLine {
  /** Tokens after `ip`, e.g. `["link", "set", "dev", "nsm-1", "up"]`; each one already validated. */
  readonly args: readonly string[];
  /** Human description used in errors, e.g. `setUp nsm-1`. */
  readonly what: string;
}

/** Runs `ip` inside a namespace: changes (`apply`) and JSON queries (`query`). */
export interface IpExecutor {
  /** How changes are delivered. */
  readonly mode: IpMode;
  /** Applies the lines in order; stops at the first failure and throws a StatusError naming that line. */
  apply(netns: Netns, lines: readonly IpLine[]): Promise<void>;
  /** Runs one read-only `ip` command and returns stdout. */
  query(netns: Netns, args: readonly string[], what: string): Promise<string>;
  /**
   * Runs read-only `ip` lines in one `ip <global> -force -batch -` process and returns stdout (one output per line
   * that succeeded, in order). A line naming a device that does not exist only leaves its output out; any other
   * failure (a missing namespace, no privilege) throws.
   */
  queryEach?(netns: Netns, global: readonly string[], lines: readonly (readonly string[])[], what: string): Promise<string>;
  /** Ends long-lived processes (`persistent`); later calls start new ones. A no-op for the other modes. */
  close?(): void;
  /**
   * `persistent`: starts the namespace's process now if it has none, so a commit that comes soon (e.g. after the
   * Request went to the next hop and back) finds it running. A no-op for the other modes.
   */
  prepare?(netns: Netns): void;
}

/** Options of `createIpExecutor`. */
export interface IpExecutorOptions {
  /** Default `persistent`. */
  mode?: IpMode;
  /** Process runner; tests inject a fake. */
  run?: CommandRunner;
  /** Paths of `ip` and `nsenter`. */
  tools?: NetnsTools;
  /** Debug log of every process started (argv, line count, duration). */
  log?: Logger;
  /** Kill an `ip` process that has not finished after this long; default 15000 (a wedged rtnl lock must not hang a forwarder forever). */
  timeoutMs?: number;
  /**
   * `persistent` only: end a namespace's process after this long without changes; default 2000 ms. The process
   * keeps its namespace alive, so a deleted pod's netns lingers at most this long after the last change.
   */
  idleMs?: number;
  /** `persistent` only: the clock of idle and line timeouts; default the real clock. */
  clock?: Clock;
}

/** The kernel reply classified into a status code and a readable reason. */
export interface IpFailure {
  readonly code: StatusError["code"];
  readonly reason: string;
}

/**
 * Maps iproute2/nsenter stderr to a status code. Exported for unit tests: the messages are iproute2's, and a
 * missing namespace or missing privilege must read the same whichever tool reported it.
 */
export function classifyIpError(stderr: string, netns: Netns | undefined): IpFailure {
  const text = stderr.replace(/\s*Command failed -:\d+\s*$/m, "").trim() || "ip failed without a message";
  const ns = netns ? netns.toString() : "netns";
  if (
    /Cannot open network namespace|nsenter: cannot open .*(No such file|No such process)|reassociate to namespace .* failed: (Invalid argument|No such)/i.test(
      text,
    )
  ) {
    return { code: Code.NotFound, reason: `${ns} not found (it was deleted or its process exited): ${text}` };
  }
  if (/Invalid "netns" value/.test(text)) return { code: Code.NotFound, reason: `target netns not found: ${text}` };
  if (/Operation not permitted|Permission denied/i.test(text))
    return { code: Code.PermissionDenied, reason: `needs root or CAP_NET_ADMIN: ${text}` };
  if (/Cannot find device|does not exist|No such device/i.test(text)) return { code: Code.NotFound, reason: text };
  if (/File exists/i.test(text)) return { code: Code.AlreadyExists, reason: text };
  if (/No such process|Cannot assign requested address/i.test(text)) return { code: Code.NotFound, reason: text };
  if (/Network is unreachable|Network is down|invalid gateway|is not up|Device or resource busy/i.test(text))
    return { code: Code.FailedPrecondition, reason: text };
  if (/Invalid argument|is wrong|out of range|Error: /i.test(text)) return { code: Code.InvalidArgument, reason: text };
  return { code: Code.Internal, reason: text };
}

function failure(netns: Netns, line: IpLine | undefined, stderr: string, argv: readonly string[]): StatusError {
  const f = classifyIpError(stderr, netns);
  const what = line ? line.what : "ip";
  const cause = new Error(`${argv.join(" ")}${line ? ` <<< ${line.args.join(" ")}` : ""}: ${stderr.trim()}`);
  return new StatusError(f.code, `kernel: ${what} in ${netns}: ${f.reason}`, { cause });
}

/** The delivery modes, for configuration parsers. */
export const IP_MODES: readonly IpMode[] = ["persistent", "batch", "per-command"];

/** Creates the executor; `mode` is the only switch between the deliveries. */
export function createIpExecutor(opts: IpExecutorOptions = {}): IpExecutor {
  const mode = opts.mode ?? "persistent";
  const run = opts.run ?? runCommand;
  const tools = opts.tools ?? {};
  const log = opts.log;
  const timeoutMs = opts.timeoutMs ?? 15000;

  async function exec(netns: Netns, argv: readonly string[], line: IpLine | undefined, stdin?: string) {
    try {
      return await run(
        argv,
        stdin === undefined ? { signal: AbortSignal.timeout(timeoutMs) } : { stdin, signal: AbortSignal.timeout(timeoutMs) },
      );
    } catch (err) {
      if (err instanceof StatusError) throw err;
      const e = err as Error;
      const timedOut = e.name === "AbortError" || e.name === "TimeoutError";
      throw new StatusError(
        timedOut ? Code.DeadlineExceeded : Code.Internal,
        `kernel: ${line ? line.what : "ip"} in ${netns}: ${timedOut ? `ip did not finish within ${timeoutMs} ms` : e.message}`,
        { cause: err },
      );
    }
  }

  async function runOne(netns: Netns, line: IpLine): Promise<void> {
    const argv = netns.ipArgv(line.args, tools);
    const t0 = performance.now();
    const r = await exec(netns, argv, line);
    log?.debug({ argv, ms: performance.now() - t0, code: r.code }, "kernel: ip");
    if (r.code !== 0) throw failure(netns, line, r.stderr, argv);
  }

  const sessions = new Map<string, IpSession>();
  const idleMs = opts.idleMs ?? 2000;
  const clock = opts.clock ?? realClock;

  function sessionFor(netns: Netns): IpSession {
    // Keyed by the namespace's identity: two handles of one netns share a process.
    const key = `${netns.dev}:${netns.inode}`;
    const have = sessions.get(key);
    if (have !== undefined && !have.exited) return have;
    // A retired session is replaced without closing it: the commit in flight on it finishes there; it ends by
    // itself once idle.
    const s: IpSession = new IpSession(netns, {
      tools,
      clock,
      idleMs,
      timeoutMs,
      onExit: () => {
        if (sessions.get(key) === s) sessions.delete(key);
      },
    });
    sessions.set(key, s);
    return s;
  }

  /**
   * The session of `netns`, but only while the handle's path still names the namespace the process is in: a process
   * inside keeps a namespace alive after its pod exited or its name was deleted, where a new process would have
   * failed with NotFound. One stat per commit keeps that answer.
   */
  async function liveSessionFor(netns: Netns): Promise<IpSession> {
    const s = sessionFor(netns);
    if (netns.isCurrent) return s;
    const st = await stat(netns.path).catch(() => undefined);
    if (st?.ino === netns.inode && st.dev === netns.dev) return s;
    s.retire(); // commits queued on it move to a new session, which checks again
    return sessionFor(netns); // a new process, which fails as a process per commit would
  }

  async function applyPersistent(netns: Netns, lines: readonly IpLine[]): Promise<void> {
    const t0 = performance.now();
    const argv = netns.ipArgv(["-force", "-batch", "-"], tools);
    const tokens = lines.map((l) => l.args);
    let r: SessionResult | undefined;
    // A session retired (see ip-session.ts) under commits queued on it sends them to a new one.
    for (let tries = 0; r === undefined; tries++) {
      try {
        r = await (await liveSessionFor(netns)).run(tokens);
      } catch (err) {
        if (err instanceof SessionRetired && tries < 3) continue;
        if (!(err instanceof StatusError)) throw err;
        throw new StatusError(err.code, `kernel: batch of ${lines.length} changes in ${netns}: ${err.message}`, { cause: err });
      }
    }
    log?.debug({ argv, lines: lines.length, ms: performance.now() - t0, ok: r.ok }, "kernel: ip session");
    if (!r.ok && r.stderr.startsWith(NOT_INSTALLED)) throw new StatusError(Code.FailedPrecondition, r.stderr);
    if (!r.ok) throw failure(netns, lines[r.index], r.stderr, argv);
  }

  return {
    mode,
    close() {
      for (const s of sessions.values()) s.close();
      sessions.clear();
    },
    prepare(netns) {
      if (mode === "persistent" && !netns.isCurrent) sessionFor(netns);
    },
    async apply(netns, lines) {
      if (lines.length === 0) return;
      if (mode === "persistent") return applyPersistent(netns, lines);
      if (mode === "per-command" || lines.length === 1) {
        for (const line of lines) await runOne(netns, line);
        return;
      }
      const argv = netns.ipArgv(["-batch", "-"], tools);
      const stdin = `${lines.map((l) => l.args.join(" ")).join("\n")}\n`;
      const t0 = performance.now();
      const whole: IpLine = { args: ["-batch", "-"], what: `batch of ${lines.length} changes` };
      const r = await exec(netns, argv, whole, stdin);
      log?.debug({ argv, lines: lines.length, ms: performance.now() - t0, code: r.code }, "kernel: ip -batch");
      if (r.code !== 0) {
        const m = /Command failed -:(\d+)/.exec(r.stderr);
        const line = m?.[1] !== undefined ? lines[Number(m[1]) - 1] : undefined;
        throw failure(netns, line ?? whole, r.stderr, argv);
      }
    },
    async queryEach(netns, global, lines, what) {
      if (lines.length === 0) return "";
      const argv = netns.ipArgv([...global, "-force", "-batch", "-"], tools);
      const stdin = `${lines.map((l) => l.join(" ")).join("\n")}\n`;
      const r = await exec(netns, argv, { args: [...global, "-batch", "-"], what }, stdin);
      const other = r.stderr.split("\n").filter((l) => l !== "" && !/^Device ".*" does not exist\.$|^Command failed -:\d+$/.test(l));
      if (r.code !== 0 && other.length > 0) throw failure(netns, { args: global, what }, r.stderr, argv);
      return r.stdout;
    },
    async query(netns, args, what) {
      const argv = netns.ipArgv(args, tools);
      const r = await exec(netns, argv, { args, what });
      if (r.code !== 0) throw failure(netns, { args, what }, r.stderr, argv);
      return r.stdout;
    },
  };
}
