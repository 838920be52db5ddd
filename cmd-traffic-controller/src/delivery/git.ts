/**
 * GitOps target: the cluster's YAML tree is committed to a git repository (a path or any URL `git push`
 * accepts) on `git_branch`, one commit per outbox entry, with the entry's sequence number as a
 * `Nsmts-Sequence:` trailer. Before applying, the worker fetches the branch and reads the trailer of its tip:
 * an entry at or below it was already pushed (by this replica before a crash, or by another) and is skipped,
 * so every entry lands exactly once and in order. Uses the `git` CLI in a persistent work tree per cluster,
 * so an apply touches only the changed files.
 */
import { execFile } from "node:child_process";
import { mkdir, rm, stat, unlink, writeFile } from "node:fs/promises";
import { dirname, join, normalize, sep } from "node:path";
import type { Delivery, DeliveryTarget } from "./target.js";

/** Options of `createGitTarget`. */
export interface GitTargetOptions {
  /** Repository URL or path. */
  url: string;
  /** Default "main". */
  branch?: string;
  /** The work tree (created if missing; owned by the target). */
  workDir: string;
  /** Committer identity; default "nsmts traffic controller <traffic-controller@nsmts.invalid>". */
  author?: { name: string; email: string };
  /** git binary; default "git" on PATH. */
  gitBinary?: string;
  /** Per-command timeout; default 60 000 ms. */
  commandTimeoutMs?: number;
}

const TRAILER = "Nsmts-Sequence";

/** Runs git; rejects with its stderr (first lines) on failure. */
function git(bin: string, cwd: string, args: string[], timeoutMs: number, signal?: AbortSignal): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(
      bin,
      args,
      { cwd, timeout: timeoutMs, signal, env: { ...process.env, GIT_TERMINAL_PROMPT: "0", LC_ALL: "C" }, maxBuffer: 16 << 20 },
      (err, stdout, stderr) => {
        if (err) reject(new Error(`git ${args[0]}: ${stderr.trim().split("\n").slice(-8).join("; ").slice(-1000) || err.message}`));
        else resolve(stdout);
      },
    );
  });
}

/** Creates the target. */
export function createGitTarget(opts: GitTargetOptions): DeliveryTarget & { lastSequence(): Promise<bigint> } {
  const bin = opts.gitBinary ?? "git";
  const branch = opts.branch || "main";
  const dir = opts.workDir;
  const timeout = opts.commandTimeoutMs ?? 60_000;
  const author = opts.author ?? { name: "nsmts traffic controller", email: "traffic-controller@nsmts.invalid" };
  const run = (args: string[], signal?: AbortSignal) => git(bin, dir, args, timeout, signal);

  async function init(): Promise<void> {
    await rm(dir, { recursive: true, force: true });
    await mkdir(dir, { recursive: true });
    await run(["init", "-q", "-b", branch]);
    await run(["config", "user.name", author.name]);
    await run(["config", "user.email", author.email]);
    await run(["remote", "add", "origin", opts.url]);
  }

  /** Brings the work tree to the remote branch's tip (or an empty branch when the remote has none). */
  async function sync(signal: AbortSignal): Promise<void> {
    const fresh = await stat(join(dir, ".git")).then(
      () => false,
      () => true,
    );
    if (fresh) await init();
    await run(["remote", "set-url", "origin", opts.url]);
    await run(["fetch", "-q", "--prune", "origin"], signal);
    const remote = await run(["rev-parse", "--verify", "-q", `refs/remotes/origin/${branch}`]).then(
      (s) => s.trim(),
      () => "",
    );
    if (remote === "") {
      // Nothing pushed yet: start over from an empty branch (drops commits a failed push left behind).
      await init();
      return;
    }
    await run(["checkout", "-q", "-f", "-B", branch, remote]);
    await run(["clean", "-q", "-f", "-d"]);
  }

  async function tipSequence(): Promise<bigint> {
    const msg = await run(["log", "-1", "--format=%B"]).catch(() => "");
    const m = new RegExp(`^${TRAILER}: (\\d+)$`, "m").exec(msg);
    return m?.[1] === undefined ? 0n : BigInt(m[1]);
  }

  const inside = (p: string): string => {
    const n = normalize(p);
    if (n.startsWith("..") || n.startsWith(sep) || n === ".git" || n.startsWith(`.git${sep}`))
      throw new Error(`git target: path ${JSON.stringify(p)} leaves the tree`);
    return join(dir, n);
  };

  return {
    async apply(d: Delivery, signal: AbortSignal): Promise<void> {
      await sync(signal);
      if ((await tipSequence()) >= BigInt(d.seq)) return; // already pushed
      for (const [p, content] of Object.entries(d.puts)) {
        const file = inside(p);
        await mkdir(dirname(file), { recursive: true });
        await writeFile(file, content);
      }
      for (const p of d.deletes) await unlink(inside(p)).catch(() => undefined);
      await run(["add", "-A"]);
      const msg = `${d.reason}\n\nNsmts-Cluster: ${d.cluster}\nNsmts-Revision: ${d.revision}\n${TRAILER}: ${d.seq}\n`;
      await run(["commit", "-q", "--allow-empty", "-m", msg]);
      await run(["push", "-q", "origin", `${branch}:${branch}`], signal);
    },
    async lastSequence(): Promise<bigint> {
      return tipSequence();
    },
  };
}
