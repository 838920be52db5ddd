/**
 * Spawning helper processes (`ip`, `nsenter`). Kept tiny and injectable so that command building can be
 * unit-tested without a kernel.
 */
import { spawn } from "node:child_process";
import { Code, StatusError } from "@nsm-ts/base/status";

/** What a finished child process left behind. */
export interface CommandResult {
  /** Exit code (or 128 + signal number when killed). */
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Options of `runCommand`. */
export interface RunOptions {
  /** Written to the child's stdin, which is then closed (used for `ip -batch -`). */
  stdin?: string;
  /** Kills the child when aborted. */
  signal?: AbortSignal;
}

/** Runs a command to completion; the signature every ip executor is built on, so tests can swap it. */
export type CommandRunner = (argv: readonly string[], opts?: RunOptions) => Promise<CommandResult>;

/**
 * Spawns `argv[0]` without a shell and collects its output; throws FailedPrecondition if it is not installed.
 *
 * @internal The package entry exports it only for integration-linux and bench, which run `ping` and `ip -V`
 * with it.
 */
export const runCommand: CommandRunner = (argv, opts = {}) =>
  new Promise<CommandResult>((resolve, reject) => {
    const [file, ...args] = argv;
    if (file === undefined) {
      reject(new StatusError(Code.InvalidArgument, "exec: empty command"));
      return;
    }
    const child = spawn(file, args, {
      stdio: [opts.stdin === undefined ? "ignore" : "pipe", "pipe", "pipe"],
      signal: opts.signal,
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout?.on("data", (b: Buffer) => out.push(b));
    child.stderr?.on("data", (b: Buffer) => err.push(b));
    child.on("error", (e: NodeJS.ErrnoException) => {
      if (e.code === "ENOENT")
        reject(new StatusError(Code.FailedPrecondition, `exec: ${file} not found (install iproute2/util-linux)`, { cause: e }));
      else reject(e);
    });
    child.on("close", (code, sig) => {
      resolve({
        code: code ?? 128 + (sig === null ? 0 : 9),
        stdout: Buffer.concat(out).toString("utf8"),
        stderr: Buffer.concat(err).toString("utf8"),
      });
    });
    if (opts.stdin !== undefined && child.stdin) {
      child.stdin.on("error", () => {
        /* the child may exit before reading everything (ip -batch stops at the first error) */
      });
      child.stdin.end(opts.stdin);
    }
  });
