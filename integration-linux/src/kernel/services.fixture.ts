/**
 * Programs for service data-plane tests: a TCP server that answers every connection with its own name, and a
 * client that opens N connections one after another (each a new flow) and reports whom it reached. Both run
 * as real processes inside a namespace (`nsenter --net=…`).
 */
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { type Netns, runCommand } from "@nsm-ts/sdk-linux";

const serverJs = `
const net = require("node:net");
const [name, host, port] = process.argv.slice(1);
net.createServer((s) => { s.on("error", () => {}); s.end(name + "\\n"); }).listen(Number(port), host, () => process.stdout.write("ready\\n"));
`;

const clientJs = `
const net = require("node:net");
const [host, port, n, timeoutMs] = process.argv.slice(1);
function one() {
  return new Promise((resolve) => {
    const t0 = Date.now();
    const s = net.connect({ host, port: Number(port) });
    let data = "";
    const done = (who) => { s.destroy(); resolve({ who, ms: Date.now() - t0 }); };
    s.setTimeout(Number(timeoutMs), () => done("timeout"));
    s.on("data", (b) => { data += b; });
    s.on("end", () => done(data.trim() || "empty"));
    s.on("error", (e) => done(e.code || "error"));
  });
}
(async () => {
  const out = [];
  for (let i = 0; i < Number(n); i++) out.push(await one());
  process.stdout.write(JSON.stringify(out));
})();
`;

/** Starts a name server in `ns` on host:port; resolves once it listens. The caller kills it. */
export async function startNameServer(ns: Netns, name: string, host: string, port: number): Promise<ChildProcess> {
  const [file, ...args] = ns.execArgv([process.execPath, "-e", serverJs, name, host, String(port)]);
  const child = spawn(file as string, args, { stdio: ["ignore", "pipe", "inherit"] });
  const stdout = child.stdout;
  if (stdout === null) throw new Error("name server: no stdout");
  await Promise.race([
    once(stdout, "data"),
    once(child, "exit").then(() => {
      throw new Error(`name server ${name} exited before listening`);
    }),
  ]);
  stdout.resume();
  return child;
}

/** One connection's outcome: the server's name, or `ECONNREFUSED`, `timeout`, … */
export interface Reached {
  readonly who: string;
  readonly ms: number;
}

/** Opens `n` connections, one after another, from `ns` to host:port. */
export async function connectMany(ns: Netns, host: string, port: number, n: number, timeoutMs = 2000): Promise<Reached[]> {
  const r = await runCommand(ns.execArgv([process.execPath, "-e", clientJs, host, String(port), String(n), String(timeoutMs)]));
  if (r.code !== 0) throw new Error(`client failed: ${r.stderr}`);
  return JSON.parse(r.stdout) as Reached[];
}

/** Counts outcomes by name. */
export function tally(rs: readonly Reached[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const r of rs) out[r.who] = (out[r.who] ?? 0) + 1;
  return out;
}
