/**
 * The real `curl` against a Connect listener: unary calls as JSON (what the docs show), and server streams in
 * Connect's enveloped framing (`application/connect+json`: a flags byte, a big-endian length, the JSON message;
 * flags 0x02 marks the end-of-stream message that carries an error, if any).
 */
import { execFile, spawn, spawnSync } from "node:child_process";

/** Whether `curl` can run here, with a one-line reason when it cannot. */
export function curlAvailable(): { available: boolean; reason: string } {
  const r = spawnSync("curl", ["--version"], { stdio: "ignore" });
  return r.error === undefined && r.status === 0 ? { available: true, reason: "" } : { available: false, reason: "curl is not installed" };
}

/** The answer of a unary call: HTTP status and the parsed JSON body. */
export interface CurlAnswer {
  status: number;
  body: Record<string, unknown>;
}

/** POSTs `json` to `url` with `curl -s` as `application/json`; resolves to the HTTP status and the JSON answer. */
export function curlJson(url: string, json: unknown): Promise<CurlAnswer> {
  return new Promise((resolve, reject) => {
    const args = [
      "-s",
      "-S",
      "--max-time",
      "20",
      "-H",
      "content-type: application/json",
      "-d",
      JSON.stringify(json),
      "-w",
      "\n%{http_code}",
      url,
    ];
    execFile("curl", args, (err, stdout) => {
      if (err) return reject(err);
      const at = stdout.lastIndexOf("\n");
      const text = stdout.slice(0, at);
      resolve({ status: Number(stdout.slice(at + 1)), body: text === "" ? {} : (JSON.parse(text) as Record<string, unknown>) });
    });
  });
}

/** A server-streaming call run by `curl -N`: the messages as they arrive. */
export interface CurlStream {
  /** The next message; rejects with the stream's end-of-stream error, or when the stream ended. */
  next(): Promise<Record<string, unknown>>;
  /** Kills curl (ends the call) and waits for it to exit. */
  close(): Promise<void>;
}

/** Starts a Connect server-streaming call with `curl -N`, the request enveloped as Connect requires. */
export function curlStream(url: string, json: unknown): CurlStream {
  const payload = Buffer.from(JSON.stringify(json));
  const head = Buffer.alloc(5);
  head.writeUInt32BE(payload.length, 1);
  const child = spawn("curl", ["-s", "-N", "-H", "content-type: application/connect+json", "--data-binary", "@-", url], {
    stdio: ["pipe", "pipe", "ignore"],
  });
  child.stdin.end(Buffer.concat([head, payload]));
  const exited = new Promise<void>((r) => child.once("close", () => r()));
  let buf = Buffer.alloc(0);
  const messages: Array<Record<string, unknown>> = [];
  let failure: Error | undefined;
  let ended = false;
  let wake: (() => void) | undefined;
  child.stdout.on("data", (chunk: Buffer) => {
    buf = Buffer.concat([buf, chunk]);
    while (buf.length >= 5) {
      const len = buf.readUInt32BE(1);
      if (buf.length < 5 + len) break;
      const flags = buf[0] ?? 0;
      const msg = JSON.parse(buf.subarray(5, 5 + len).toString()) as Record<string, unknown>;
      buf = buf.subarray(5 + len);
      if ((flags & 0x02) !== 0) {
        const e = msg.error as { code?: string; message?: string } | undefined;
        if (e !== undefined) failure = new Error(`${e.code}: ${e.message}`);
        ended = true;
      } else messages.push(msg);
    }
    wake?.();
  });
  void exited.then(() => {
    ended = true;
    wake?.();
  });
  return {
    async next() {
      for (;;) {
        const m = messages.shift();
        if (m !== undefined) return m;
        if (failure !== undefined) throw failure;
        if (ended) throw new Error("stream ended");
        await new Promise<void>((r) => (wake = r));
      }
    },
    async close() {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
      await exited;
    },
  };
}
