/**
 * The client's state file: a running cmd-nsc writes its connections with their heal state to
 * `<NSM_STATE_DIR>/<NSM_NAME>.json` on every change (first Request, refresh, heal attempt, close), and
 * `cmd-nsc list connections` reads every such file in the directory. A file, not an endpoint: an operator on the
 * same machine or in the same pod reads it without credentials, ports or sockets, and a dead client cannot block it.
 */
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { heal } from "@nsm-ts/sdk/networkservice";
import type { ConnectionSummary } from "./summary.js";

/** The default state directory: `nsm-ts-nsc` in the machine's temp directory. */
export const DEFAULT_STATE_DIR = join(tmpdir(), "nsm-ts-nsc");

/** One connection of a client: what it is, and whether it is connected or healing. */
export interface ConnectionState {
  /** The connection as last returned to the client (first Request, refresh or heal). */
  connection: ConnectionSummary;
  /** Its heal state (`CONNECTED` or `HEALING` with the attempt number, trigger, reselect, last error, next attempt). */
  heal: heal.HealStatus;
}

/** The content of one client's state file. */
export interface ClientState {
  /** The client's NSM_NAME. */
  name: string;
  /** The client's process id (in its own PID namespace). */
  pid: number;
  /** When the file was written (ISO 8601). */
  updatedAt: string;
  connections: ConnectionState[];
}

/** The file a client named `name` writes in `dir` (characters other than `[A-Za-z0-9._-]` become `_`). */
export function stateFilePath(dir: string, name: string): string {
  return join(dir, `${name.replace(/[^A-Za-z0-9._-]/g, "_")}.json`);
}

/** Writes one client's state file atomically (a temp file renamed over it), so a reader never sees half a file. */
export function writeState(dir: string, state: ClientState): void {
  mkdirSync(dir, { recursive: true });
  const file = stateFilePath(dir, state.name);
  const tmp = `${file}.${state.pid}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(state, null, 2)}\n`);
  renameSync(tmp, file);
}

/** Removes a client's state file (on shutdown). */
export function removeState(dir: string, name: string): void {
  rmSync(stateFilePath(dir, name), { force: true });
}

/** Whether process `pid` exists (EPERM: it does, but is not ours to signal). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

/**
 * Every client state in `dir`, sorted by name: files that do not parse and files of processes that are gone (a
 * client killed with SIGKILL cannot remove its file) are skipped. A missing directory means no clients.
 */
export function readStates(dir: string, alive: (pid: number) => boolean = processAlive): ClientState[] {
  let names: string[];
  try {
    names = readdirSync(dir).filter((n) => n.endsWith(".json"));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return [];
    throw err;
  }
  const out: ClientState[] = [];
  for (const n of names) {
    try {
      const s = JSON.parse(readFileSync(join(dir, n), "utf8")) as ClientState;
      if (typeof s.name === "string" && typeof s.pid === "number" && Array.isArray(s.connections) && alive(s.pid)) out.push(s);
    } catch {
      // Removed between readdir and read, or not ours: skip it.
    }
  }
  return out.sort((a, b) => a.name.localeCompare(b.name));
}

/** The STATE column: `CONNECTED`, or `HEALING (attempt 3)` / `HEALING (attempt 3, reselect)`. */
export function stateText(h: heal.HealStatus): string {
  if (h.state !== "HEALING") return h.state;
  return `HEALING (attempt ${h.attempt}${h.reselect ? ", reselect" : ""})`;
}
