/**
 * A long-lived `ip -force -batch -` per namespace: changes are written to its stdin instead of starting a process
 * per commit. `ip` reports nothing on stdout for a change and, with `-force`, goes on after a failed line, writing
 * the error and `Command failed -:<line>` to stderr (unbuffered, in order). So after each line we write a sync line
 * that always fails without touching the kernel (an unknown object): when its `Command failed` arrives, every line
 * before it is done, and a `Command failed` for our line carries that line's error. Lines go one at a time, each
 * waiting for its sync, so a commit still stops at its first failed line as with a process per commit.
 *
 * A process inside a namespace keeps the namespace alive; the session ends after `idleMs` without work, so a pod's
 * netns is held at most that long after its last change.
 *
 * iproute2 caches name → ifindex for the life of the process (lib/ll_map.c) and never learns that a link was deleted:
 * a later line naming a link re-created under that name would go to the old index, which may by then belong to
 * another link (a link moved in keeps its index when it is free). The cache is only filled by name look-ups and
 * emptied per index by a successful `ip link set|del` (which drops the link it named). So after every commit the
 * session drops each name its lines looked up and did not drop themselves, with a no-op `link set dev <name>`:
 * between commits the cache is empty, and every commit resolves its names afresh, as a process per commit does.
 * A drop that fails for any other reason than "no such name" may leave an entry behind, so the session retires.
 */
import { type ChildProcess, spawn } from "node:child_process";
import type { Clock, Timer } from "@nsm-ts/base/clock";
import { Code, StatusError } from "@nsm-ts/base/status";
import { helperPids, type Netns, type NetnsTools } from "./netns.js";

/** How a line ended: undefined = done, else the stderr `ip` wrote for it. */
type LineResult = string | undefined;

/** The outcome of `IpSession.run`: every line done, or the index of the failed line and its stderr. */
export type SessionResult = { ok: true } | { ok: false; index: number; stderr: string };

/**
 * Thrown by `IpSession.run` for a commit that found the session retired, ending (idle) or gone before any of its
 * lines ran: nothing of it reached the kernel, so it runs in a new session.
 */
export class SessionRetired extends StatusError {
  constructor() {
    super(Code.Unavailable, "ip -batch session retired");
  }
}

/** Keywords whose next token is a link name that `ip` resolves through its name cache. */
const RESOLVES = new Set(["dev", "master", "link", "vrf"]);

/**
 * What one line does to iproute2's name cache: the names it looks up (and may leave cached) and the name whose
 * entry it drops when it succeeds (`ip link set|del dev X` drops X's index). Exported for unit tests.
 */
export function cacheEffect(args: readonly string[]): { resolves: string[]; drops: string | undefined } {
  const resolves: string[] = [];
  // args[0] is the object (`link`, `addr`, …): a keyword only after it.
  for (let i = 1; i < args.length - 1; i++) {
    const a = args[i] as string;
    if (RESOLVES.has(a)) resolves.push(args[++i] as string);
  }
  const modify = args[0] === "link" && (args[1] === "set" || args[1] === "del" || args[1] === "delete");
  const devAt = args.indexOf("dev");
  const drops = modify ? (devAt > 0 ? args[devAt + 1] : args[2]) : undefined;
  return { resolves, drops };
}

/** Options of `IpSession`. */
export interface IpSessionOptions {
  tools: NetnsTools;
  clock: Clock;
  /** End the process after this long without work. */
  idleMs: number;
  /** Kill the process when one line takes longer than this. */
  timeoutMs: number;
  /** Called once the process is gone (exited, killed or idle): the owner forgets the session. */
  onExit: () => void;
}

const FAILED = /^Command failed -:(\d+)$/;

/** Prefix of the exit text when the tool itself is missing (the executor turns it into FailedPrecondition). */
export const NOT_INSTALLED = "exec: ";

/** One `ip -force -batch -` process in one namespace (internal to the executor). */
export class IpSession {
  readonly #child: ChildProcess;
  readonly #opts: IpSessionOptions;
  /** Lines written so far: `ip` numbers them from 1. */
  #written = 0;
  /** stderr text since the last `Command failed` line. */
  #pendingText: string[] = [];
  #partial = "";
  /** Failed line numbers with their stderr, until their sync arrives. */
  readonly #failed = new Map<number, string>();
  #waiter: { sync: number; done: (r: LineResult) => void } | undefined;
  /** Commits queued behind the running one. */
  #tail: Promise<unknown> = Promise.resolve();
  #busy = 0;
  #idle: Timer | undefined;
  #exited = false;
  #closing = false;
  /** A drop failed: iproute2 may hold a stale entry, so no further commit runs here. */
  #retired = false;
  #exitText = "";

  constructor(
    readonly netns: Netns,
    opts: IpSessionOptions,
  ) {
    this.#opts = opts;
    const [file, ...args] = netns.ipArgv(["-force", "-batch", "-"], opts.tools);
    this.#child = spawn(file as string, args, { stdio: ["pipe", "ignore", "pipe"] });
    const pid = this.#child.pid;
    if (pid !== undefined) {
      helperPids.add(pid);
      this.#child.once("exit", () => helperPids.delete(pid));
    }
    this.#child.stderr?.setEncoding("utf8");
    this.#child.stderr?.on("data", (chunk: string) => this.#onStderr(chunk));
    this.#child.stdin?.on("error", () => undefined); // the process may exit first; its exit is reported below
    this.#child.on("error", (e: NodeJS.ErrnoException) =>
      this.#gone(e.code === "ENOENT" ? `${NOT_INSTALLED}${file} not found (install iproute2/util-linux)` : e.message),
    );
    this.#child.on("close", () => this.#gone(""));
    this.#setRef(false);
    this.#armIdle(); // a session started ahead of its first commit (`prepare`) must end too
  }

  /** True once the process is gone, ending or retired; a new session is needed. */
  get exited(): boolean {
    return this.#exited || this.#closing || this.#retired;
  }

  /**
   * Runs `lines` (each the tokens after `ip`) in order, one at a time, stopping at the first that fails; then drops
   * the names they left in iproute2's cache. Commits on one session never overlap. Rejects with `SessionRetired`
   * when the session was retired, ended or gone before this one started.
   */
  run(lines: readonly (readonly string[])[]): Promise<SessionResult> {
    const p = this.#tail.then(() => this.#runNow(lines));
    this.#tail = p.catch(() => undefined);
    return p;
  }

  /** No further commit starts here (they get `SessionRetired`); the process ends once the running one is done. */
  retire(): void {
    this.#retired = true;
    if (this.#busy === 0) this.close();
  }

  /** Ends the process (its stdin is closed; `ip` exits at EOF). */
  close(): void {
    this.#idle?.stop();
    this.#idle = undefined;
    this.#closing = true;
    if (!this.#exited) this.#child.stdin?.end();
  }

  async #runNow(lines: readonly (readonly string[])[]): Promise<SessionResult> {
    // The owner may hand out a session that ends before the commit starts (its idle end fires while the executor
    // checks the namespace): that is a retired session too, not a failed commit.
    if (this.#retired || this.#closing || this.#exited) throw new SessionRetired();
    this.#busy++;
    this.#idle?.stop();
    this.#idle = undefined;
    this.#setRef(true);
    const cached = new Set<string>();
    try {
      for (const [index, args] of lines.entries()) {
        const effect = cacheEffect(args);
        for (const n of effect.resolves) cached.add(n);
        const err = await this.#runLine(args.join(" "));
        if (err !== undefined) return { ok: false, index, stderr: err };
        if (effect.drops !== undefined) cached.delete(effect.drops);
      }
      return { ok: true };
    } finally {
      await this.#drop(cached);
      if (--this.#busy === 0 && this.#retired) this.close();
      else if (this.#busy === 0 && !this.#exited) {
        this.#setRef(false);
        this.#armIdle();
      }
    }
  }

  #armIdle(): void {
    this.#idle = this.#opts.clock.setTimer(this.#opts.idleMs, () => {
      this.#idle = undefined;
      if (this.#busy === 0) this.close();
    });
  }

  /** Empties iproute2's cache of `names` (see the header); retires the session when that may have failed. */
  async #drop(names: ReadonlySet<string>): Promise<void> {
    for (const n of names) {
      if (this.#exited || this.#closing) return;
      const err = await this.#runLine(`link set dev ${n}`).catch((e: unknown) => String(e));
      // "Cannot find device" is `ip`'s own answer when the look-up found nothing, so nothing was cached either;
      // a kernel error ("RTNETLINK answers: No such device") means a cached index that is gone.
      if (err !== undefined && !/^Cannot find device /m.test(err)) this.#retired = true;
    }
  }

  #runLine(line: string): Promise<LineResult> {
    if (this.#exited || this.#closing) return Promise.reject(this.#exitError());
    const lineNo = ++this.#written;
    const sync = ++this.#written;
    return new Promise<LineResult>((resolve, reject) => {
      const timer = this.#opts.clock.setTimer(this.#opts.timeoutMs, () => {
        this.#waiter = undefined;
        this.#child.kill("SIGKILL");
        reject(new StatusError(Code.DeadlineExceeded, `ip did not finish a line within ${this.#opts.timeoutMs} ms`));
      });
      this.#waiter = {
        sync,
        done: (r) => {
          timer.stop();
          resolve(r ?? this.#failed.get(lineNo));
          this.#failed.delete(lineNo);
        },
      };
      this.#child.stdin?.write(`${line}\nnsm-sync-${sync}\n`);
    });
  }

  #onStderr(chunk: string): void {
    const parts = (this.#partial + chunk).split("\n");
    this.#partial = parts.pop() ?? "";
    for (const text of parts) {
      const m = FAILED.exec(text);
      if (m === null) {
        if (text.trim() !== "") this.#exitText = text; // iproute2's invarg() ends with an empty line before exiting
        this.#pendingText.push(text);
        continue;
      }
      const n = Number(m[1]);
      const w = this.#waiter;
      if (w !== undefined && n === w.sync) {
        this.#pendingText = [];
        this.#waiter = undefined;
        w.done(undefined);
      } else {
        this.#failed.set(n, `${this.#pendingText.join("\n")}\nCommand failed -:${n}`);
        this.#pendingText = [];
      }
    }
  }

  #exitError(): StatusError {
    return new StatusError(Code.Unavailable, `ip -batch session in ${this.netns} ended${this.#exitText ? `: ${this.#exitText}` : ""}`);
  }

  /**
   * The process is gone: the line in flight fails with what it said last (e.g. nsenter's missing namespace), even
   * if the kernel took it just before: without its sync nobody can tell, and a retry finds its own leftover.
   */
  #gone(text: string): void {
    if (this.#exited) return;
    this.#exited = true;
    if (text) this.#exitText = text;
    else if (this.#partial) this.#exitText = this.#partial;
    this.#idle?.stop();
    this.#idle = undefined;
    const w = this.#waiter;
    this.#waiter = undefined;
    w?.done(this.#exitText || "ip -batch session ended unexpectedly");
    this.#opts.onExit();
  }

  /** A session with no work must not keep the program alive. */
  #setRef(on: boolean): void {
    for (const s of [this.#child.stdin, this.#child.stderr]) {
      const sock = s as unknown as { ref?: () => void; unref?: () => void } | null;
      if (on) sock?.ref?.();
      else sock?.unref?.();
    }
    if (on) this.#child.ref();
    else this.#child.unref();
  }
}
