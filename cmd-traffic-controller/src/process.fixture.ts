/**
 * cmd-traffic-controller as a real process for the crash and replica tests: spawned on free loopback ports,
 * its log lines collected (so a test waits for a line, never a time), always killed in `stop`.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { freePorts } from "@nsm-ts/testing/net";
import { envWithout } from "@nsm-ts/testing/program";
import { config } from "./config.js";

const bin = fileURLToPath(new URL("../bin/cmd-traffic-controller.js", import.meta.url));

/** A running controller. */
export interface ControllerProcess {
  readonly grpcUrl: string;
  readonly httpUrl: string;
  readonly child: ChildProcess;
  /** Resolves with the first log line (parsed) for which `pred` holds, seen before or after the call. */
  waitForLog(pred: (line: Record<string, unknown>) => boolean): Promise<Record<string, unknown>>;
  stop(signal?: NodeJS.Signals): Promise<void>;
}

/** Starts a controller on etcd with its own git work dir; resolves once it serves. */
export async function startController(
  etcd: string[],
  prefix: string,
  workDir: string,
  extra: Record<string, string> = {},
): Promise<ControllerProcess> {
  const [grpcPort, httpPort] = await freePorts(2);
  const env = envWithout(config, {
    NSM_LISTEN_ON: `tcp://127.0.0.1:${grpcPort}`,
    NSM_HTTP_LISTEN_ON: `tcp://127.0.0.1:${httpPort}`,
    NSM_INTENTS_STORE: `etcd://${etcd.map((e) => e.replace(/^https?:\/\//, "")).join(",")}`,
    NSM_INTENTS_ETCD_PREFIX: prefix,
    NSM_GIT_WORK_DIR: join(workDir),
    NSM_DELIVERY_LOCK_TTL: "2s",
    NSM_LOG_LEVEL: "DEBUG",
    ...extra,
  });
  const child = spawn(process.execPath, [bin], { env, stdio: ["ignore", "pipe", "pipe"] });
  const lines: Record<string, unknown>[] = [];
  const waiters: Array<{ pred: (l: Record<string, unknown>) => boolean; resolve: (l: Record<string, unknown>) => void }> = [];
  let buf = "";
  child.stdout?.setEncoding("utf8");
  child.stdout?.on("data", (s: string) => {
    buf += s;
    for (let i = buf.indexOf("\n"); i >= 0; i = buf.indexOf("\n")) {
      const raw = buf.slice(0, i);
      buf = buf.slice(i + 1);
      let line: Record<string, unknown>;
      try {
        line = JSON.parse(raw) as Record<string, unknown>;
      } catch {
        line = { msg: raw };
      }
      lines.push(line);
      for (const w of [...waiters]) {
        if (w.pred(line)) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve(line);
        }
      }
    }
  });
  let stderr = "";
  child.stderr?.setEncoding("utf8");
  child.stderr?.on("data", (s: string) => {
    stderr += s;
  });
  const exited = once(child, "exit");
  const waitForLog = (pred: (l: Record<string, unknown>) => boolean) => {
    const seen = lines.find(pred);
    if (seen) return Promise.resolve(seen);
    return new Promise<Record<string, unknown>>((resolve, reject) => {
      waiters.push({ pred, resolve });
      exited.then(() => reject(new Error(`controller exited: ${stderr}`)), reject);
    });
  };
  await waitForLog((l) => l.msg === "cmd-traffic-controller serving");
  return {
    grpcUrl: `tcp://127.0.0.1:${grpcPort}`,
    httpUrl: `http://127.0.0.1:${httpPort}`,
    child,
    waitForLog,
    async stop(signal: NodeJS.Signals = "SIGKILL") {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill(signal);
      await exited;
    },
  };
}

/** POSTs Connect JSON, failing on a non-200 answer. */
export async function postJson(base: string, method: string, body: unknown): Promise<Record<string, unknown>> {
  const res = await fetch(`${base}/nsmts.intents.v1.${method}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  const out = (await res.json()) as Record<string, unknown>;
  if (res.status !== 200) throw new Error(`${method}: HTTP ${res.status}: ${JSON.stringify(out)}`);
  return out;
}
