/**
 * The shared `main()` of every nsm-ts program: `--help`, config validation with a one-line error and exit
 * code 2, a logger at the configured level, SIGTERM/SIGINT turned into an AbortSignal, exit codes from the
 * outcome. The process itself (env, argv, exit, streams, signals) is passed in, so the SDK never touches
 * `process` and tests can drive every path in-process.
 */
import type { LevelWithSilent } from "pino";
import { createLogger, type Logger, switchLevelOnSignals } from "../log/index.js";
import { ConfigError, type ConfigSchema, type ConfigValues, type ConfigVar } from "./schema.js";

/** What a program's `run` gets besides its configuration. */
export interface RunContext {
  /** Aborted on the first SIGTERM/SIGINT: stop serving, clean up, then resolve. */
  signal: AbortSignal;
  /** The program's logger, at `NSM_LOG_LEVEL`. */
  log: Logger;
  /** Command-line arguments (only non-empty when `acceptArgs` is set). */
  argv: string[];
}

/** Something that delivers process signals; `process` in a program, an EventEmitter in tests. */
export interface SignalSource {
  on(event: "SIGTERM" | "SIGINT" | "SIGUSR1" | "SIGUSR2", listener: () => void): unknown;
  off(event: "SIGTERM" | "SIGINT" | "SIGUSR1" | "SIGUSR2", listener: () => void): unknown;
}

/** The process a program runs in, passed by `main.ts` (usually `process.*`). */
export interface MainIo {
  /** Arguments after the script, `process.argv.slice(2)`. */
  argv: readonly string[];
  /** The environment, `process.env`. */
  env: Readonly<Record<string, string | undefined>>;
  /** Ends the process, `(code) => process.exit(code)`. */
  exit: (code: number) => never;
  /** Help text and log lines go here. */
  stdout: NodeJS.WritableStream;
  /** The one-line configuration error goes here. */
  stderr: NodeJS.WritableStream;
  /** Source of SIGTERM/SIGINT, `process`. */
  signals: SignalSource;
}

/** Options of `runMain`. */
export interface RunMainOptions {
  /** Pass positional arguments to `run` instead of rejecting them (for programs with subcommands). */
  acceptArgs?: boolean;
}

/** Exit code for a configuration (usage) error. */
export const EXIT_CONFIG = 2;

function isAbort(err: unknown, signal: AbortSignal): boolean {
  return signal.aborted && (err === signal.reason || (err instanceof Error && err.name === "AbortError"));
}

/**
 * Runs a program: `--help`/`-h` prints the table and exits 0; a bad configuration prints
 * `<program>: <VARIABLE>: <reason>` to stderr and exits 2; the first SIGTERM/SIGINT aborts `ctx.signal` and a
 * second exits 1 at once; SIGUSR1 switches the log to trace and SIGUSR2 back; `run` rejecting logs at fatal and exits 1 (unless it rejected with the abort
 * after a signal); `run` resolving exits 0.
 */
export async function runMain<S extends Record<string, ConfigVar<unknown>>>(
  program: string,
  schema: ConfigSchema<S>,
  run: (cfg: ConfigValues<S>, ctx: RunContext) => Promise<void>,
  io: MainIo,
  opts: RunMainOptions = {},
): Promise<void> {
  const oneLine = (s: string): string => `${program}: ${s.replace(/\s*\n\s*/g, " ")}\n`;
  if (io.argv.includes("--help") || io.argv.includes("-h")) {
    io.stdout.write(schema.help(program));
    return io.exit(0);
  }
  const first = io.argv[0];
  if (!opts.acceptArgs && first !== undefined) {
    io.stderr.write(oneLine(`unexpected argument ${JSON.stringify(first)}: configure by environment variables (see --help)`));
    return io.exit(EXIT_CONFIG);
  }
  let cfg: ConfigValues<S>;
  try {
    cfg = schema.parse(io.env);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    io.stderr.write(oneLine(err.message));
    return io.exit(EXIT_CONFIG);
  }

  const log = createLogger({ name: program, level: levelOf(schema, cfg), destination: io.stdout });
  // SIGUSR1 → trace, SIGUSR2 → back to NSM_LOG_LEVEL (as upstream), for the program's whole life.
  const unswitch = switchLevelOnSignals(log, io.signals);
  const ac = new AbortController();
  const handlers = (["SIGTERM", "SIGINT"] as const).map((sig) => {
    const listener = (): void => {
      if (!ac.signal.aborted) {
        log.info({ signal: sig }, "shutting down");
        ac.abort(new Error(`received ${sig}`));
        return;
      }
      log.warn({ signal: sig }, "second signal: exiting without cleanup");
      io.exit(1);
    };
    io.signals.on(sig, listener);
    return [sig, listener] as const;
  });

  // A run that only waits for the signal leaves nothing on the event loop; without this timer Node would end
  // the process with code 13 (unsettled top-level await) instead of waiting for SIGTERM.
  const keepAlive = setInterval(() => {}, 1 << 30);
  let code = 0;
  try {
    await run(cfg, { signal: ac.signal, log, argv: [...io.argv] });
  } catch (err) {
    if (!isAbort(err, ac.signal)) {
      log.fatal({ err }, err instanceof Error ? err.message : String(err));
      code = 1;
    }
  } finally {
    clearInterval(keepAlive);
    for (const [sig, listener] of handlers) io.signals.off(sig, listener);
    unswitch();
  }
  return io.exit(code);
}

/** The level from the entry named NSM_LOG_LEVEL, if the table has one; `info` otherwise. */
function levelOf<S extends Record<string, ConfigVar<unknown>>>(schema: ConfigSchema<S>, cfg: ConfigValues<S>): LevelWithSilent {
  for (const [key, v] of Object.entries(schema.vars)) {
    const value: unknown = (cfg as Record<string, unknown>)[key];
    if (v.name === "NSM_LOG_LEVEL" && typeof value === "string") return value as LevelWithSilent;
  }
  return "info";
}
