// The programs `npm start` runs: each started as a process of its own (detached) and followed through its JSON log,
// and stopped with SIGTERM (SIGKILL after a timeout, or at once).
import { spawn } from "node:child_process";
import { once } from "node:events";
import { createServer } from "node:net";
import { join, resolve } from "node:path";
import { describeLine, out } from "./output.js";

/** The repository's root directory. */
export const root = resolve(import.meta.dirname, "../..");
/** The launcher of a program, e.g. `cmd-nsmgr/bin/cmd-nsmgr.js`. */
export const binOf = (program) => join(root, program, "bin", `${program}.js`);
/** NSM_START_VERBOSE=1: echo every program log line. */
export const verbose = process.env.NSM_START_VERBOSE === "1";
const STEP_TIMEOUT_MS = 15_000;
const STOP_TIMEOUT_MS = 8_000;

/** Every program started, in start order: { name, child, lines, exited }. */
export const programs = [];
let meshUp = false;

/** Shows the programs' warnings from now on; until the client is connected, retries while the others start are expected. */
export function showWarnings() {
  meshUp = true;
}

/** A free loopback TCP port (bound and released at once). */
export async function freePort() {
  const s = createServer();
  s.listen(0, "127.0.0.1");
  await once(s, "listening");
  const { port } = s.address();
  s.close();
  await once(s, "close");
  return port;
}

/** The caller's environment without any variable our programs read, plus `vars`. */
function envWith(vars) {
  const env = { ...process.env };
  for (const k of Object.keys(env)) {
    if (k.startsWith("NSM_") || ["NODE_NAME", "POD_NAME", "CLUSTER_NAME", "TELEMETRY"].includes(k)) delete env[k];
  }
  return { ...env, NSM_LOG_LEVEL: process.env.NSM_LOG_LEVEL ?? "INFO", NSM_MAX_TOKEN_LIFETIME: "1m", ...vars };
}

/**
 * Starts one program (detached, so a Ctrl-C in the terminal reaches only this script, which stops the programs in
 * order) and resolves with its first log record whose msg is `readyMsg`.
 */
export function startProgram(name, program, vars, readyMsg, opts = {}) {
  const args = [binOf(program)];
  const [cmd, argv] = opts.netns ? ["ip", ["netns", "exec", opts.netns, process.execPath, ...args]] : [process.execPath, args];
  const child = spawn(cmd, argv, { env: envWith(vars), stdio: ["ignore", "pipe", "pipe"], detached: true });
  const p = { name, child, lines: [], exited: false, onRecord: undefined };
  programs.push(p);
  child.on("exit", () => (p.exited = true));
  let buf = "";
  const onLine = (line) => {
    if (line.trim() === "") return;
    p.lines.push(line);
    if (p.lines.length > 200) p.lines.shift();
    let rec;
    try {
      rec = JSON.parse(line);
    } catch {
      if (verbose) out(`  [${name}] ${line}`);
      return;
    }
    // Until the client is connected, retries while the others start are expected; show warnings after that.
    if (verbose || (meshUp && rec.level >= 40 && !/insecure dev mode/.test(rec.msg ?? ""))) out(describeLine(name, rec));
    p.onRecord?.(rec);
  };
  child.stdout.setEncoding("utf8");
  child.stdout.on("data", (s) => {
    buf += s;
    for (let i = buf.indexOf("\n"); i >= 0; i = buf.indexOf("\n")) {
      onLine(buf.slice(0, i));
      buf = buf.slice(i + 1);
    }
  });
  child.stderr.setEncoding("utf8");
  child.stderr.on("data", (s) => {
    for (const line of s.split("\n")) if (line.trim() !== "") p.lines.push(line);
  });
  const ready = new Promise((resolveReady, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`${name} did not report "${readyMsg}" within ${STEP_TIMEOUT_MS / 1000} s`)),
      STEP_TIMEOUT_MS,
    );
    const listeners = [];
    p.waitFor = (msg, cb) => listeners.push([msg, cb]);
    p.onRecord = (rec) => {
      if (rec.msg === readyMsg) {
        p.readyAt = Date.now();
        clearTimeout(timer);
        resolveReady(rec);
      }
      for (const [msg, cb] of listeners) if (rec.msg === msg) cb(rec);
    };
    child.once("exit", (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`${name} exited (${signal ?? `code ${code}`}) before it was ready:\n${tail(p)}`));
    });
  });
  ready.catch(() => {});
  return { p, ready };
}

/** The last `n` lines a program wrote, for an error message. */
export function tail(p, n = 8) {
  return p.lines
    .slice(-n)
    .map((l) => {
      try {
        return describeLine(p.name, JSON.parse(l));
      } catch {
        return `  [${p.name}] ${l}`;
      }
    })
    .join("\n");
}

/** SIGTERM, then SIGKILL after STOP_TIMEOUT_MS; resolves with how it ended. */
export async function stopProgram(p) {
  if (p.exited || p.child.exitCode !== null || p.child.signalCode !== null) return `already exited`;
  const exited = once(p.child, "exit");
  p.child.kill("SIGTERM");
  let timer;
  const killed = new Promise((r) => {
    timer = setTimeout(() => {
      p.child.kill("SIGKILL");
      r("killed after timeout");
    }, STOP_TIMEOUT_MS);
  });
  const result = await Promise.race([exited.then(([code, sig]) => (sig ? `signal ${sig}` : `exit ${code}`)), killed]);
  clearTimeout(timer);
  if (result === "killed after timeout") await exited;
  return result;
}

/** SIGKILL to every program still running. */
export function killAllNow() {
  for (const p of programs) {
    if (p.child.exitCode === null && p.child.signalCode === null) {
      try {
        process.kill(p.child.pid, "SIGKILL");
      } catch {}
    }
  }
}
