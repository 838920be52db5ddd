/**
 * The one place that decides how changes reach the kernel: all `ip` lines for one namespace in a single
 * `ip -batch -` process (default), one `ip` process per line (kept for comparison and debugging; see
 * bench/RESULTS.md "Kernel operations"), or a long-lived `ip -force -batch -` per namespace fed line by line
 * (`persistent`, ip-session.ts: no process start per commit). Callers only see `IpExecutor`.
 */
import { type Clock, realClock } from "@nsm-ts/base/clock";
import type { Logger } from "@nsm-ts/base/log";
import { Code, StatusError } from "@nsm-ts/base/status";
import { type CommandRunner, runCommand } from "./exec.js";
import { IpSession, NOT_INSTALLED } from "./ip-session.js";
import type { Netns, NetnsTools } from "./netns.js";

/**
 * `batch`: one process per namespace per commit; `per-command`: one process per change; `persistent`: one
 * long-lived `ip -force -batch -` per namespace, ended after `idleMs` without work (queries still start a process).
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
  /** Ends long-lived processes (`persistent`); later calls start new ones. A no-op for the other modes. */
  close?(): void;
}

/** Options of `createIpExecutor`. */
export interface IpExecutorOptions {
  /** Default `batch`. */
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

/** Creates the executor; `mode` is the only switch between batched and per-command delivery. */
export function createIpExecutor(opts: IpExecutorOptions = {}): IpExecutor {
  const mode = opts.mode ?? "batch";
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

  function sessionFor(netns: Netns, fresh: boolean): IpSession {
    // Keyed by the namespace's identity: two handles of one netns share a process.
    const key = `${netns.dev}:${netns.inode}`;
    const have = sessions.get(key);
    if (have !== undefined && !have.exited && !fresh) return have;
    // A fresh session replaces the old one without closing it: other commits may be queued on it (concurrent
    // commits in one namespace), and they must run, not fail; it ends by itself once idle.
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

  async function applyPersistent(netns: Netns, lines: readonly IpLine[]): Promise<void> {
    const t0 = performance.now();
    const argv = netns.ipArgv(["-force", "-batch", "-"], tools);
    const run = (s: IpSession, from: number) =>
      s.run(lines.slice(from).map((l) => l.args.join(" "))).catch((err: unknown) => {
        if (!(err instanceof StatusError)) throw err;
        throw new StatusError(err.code, `kernel: batch of ${lines.length} changes in ${netns}: ${err.message}`, { cause: err });
      });
    let r = await run(sessionFor(netns, false), 0);
    // iproute2 caches name → ifindex for the life of the process and never learns that a link was deleted and its
    // name reused (by us, by the kernel deleting a veth peer, by the pod): a line naming such a link fails with
    // "no such device". It had no effect, so it and the rest of the commit are retried once in a fresh process.
    if (!r.ok && /Cannot find device|No such device|does not exist/i.test(r.stderr)) {
      const done = r.index;
      r = await run(sessionFor(netns, true), done);
      if (!r.ok) r = { ...r, index: r.index + done };
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
    async query(netns, args, what) {
      const argv = netns.ipArgv(args, tools);
      const r = await exec(netns, argv, { args, what });
      if (r.code !== 0) throw failure(netns, { args, what }, r.stderr, argv);
      return r.stdout;
    },
  };
}
