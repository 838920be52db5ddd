/**
 * Structured logging with pino: one JSON line per event. Library code never prints; it logs through the
 * `Logger` it is given (usually `ctx.log`, a child carrying the connection id).
 */
import { type LevelWithSilent, type Logger as PinoLogger, pino } from "pino";

/** The logger type used throughout nsm-ts. */
export type Logger = PinoLogger;

/** Options for `createLogger`. */
export interface LoggerOptions {
  /** Program or component name, logged as `name`. */
  name?: string;
  /** Level; default `info`. */
  level?: LevelWithSilent;
  /** Where lines go; default stdout. */
  destination?: NodeJS.WritableStream;
}

/** Creates a pino logger writing JSON lines. */
export function createLogger(opts: LoggerOptions = {}): Logger {
  const o = { name: opts.name, level: opts.level ?? "info", base: { pid: process.pid } };
  return opts.destination ? pino(o, opts.destination) : pino(o);
}

/** A logger that drops everything, the default for library code and tests that do not look at logs. */
export const silentLogger: Logger = pino({ level: "silent" });

/** Valid values of `NSM_LOG_LEVEL` (upstream names and pino names, case-insensitive). */
export function parseLogLevel(value: string): LevelWithSilent | undefined {
  const v = value.trim().toLowerCase();
  const map: Record<string, LevelWithSilent> = {
    trace: "trace",
    debug: "debug",
    info: "info",
    warn: "warn",
    warning: "warn",
    error: "error",
    fatal: "fatal",
    panic: "fatal",
    silent: "silent",
  };
  return map[v];
}

/** Level-switch signals; `process` in a program, an EventEmitter in tests. */
export interface LevelSignalSource {
  on(event: "SIGUSR1" | "SIGUSR2", listener: () => void): unknown;
  off(event: "SIGUSR1" | "SIGUSR2", listener: () => void): unknown;
}

/**
 * Switches `log` at runtime as upstream does: SIGUSR1 → `trace`, SIGUSR2 → back to the level it had when this
 * was called. Child loggers follow (pino children read the level through their parent unless they set their
 * own), so per-call loggers switch too. Returns a function removing the listeners.
 */
export function switchLevelOnSignals(log: Logger, signals: LevelSignalSource): () => void {
  const configured = log.level;
  const toTrace = (): void => {
    log.level = "trace";
    log.info({ logLevel: "trace", signal: "SIGUSR1" }, "log level changed");
  };
  const back = (): void => {
    log.level = configured;
    if (log.isLevelEnabled("info")) log.info({ logLevel: configured, signal: "SIGUSR2" }, "log level changed");
  };
  signals.on("SIGUSR1", toTrace);
  signals.on("SIGUSR2", back);
  return () => {
    signals.off("SIGUSR1", toTrace);
    signals.off("SIGUSR2", back);
  };
}
