/**
 * Helpers of the enforcement tests: TCP listeners and connection attempts inside a namespace (each a small Node
 * process under nsenter), and a spy on the nft layer that reports each table applied.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { type Netns, nft, runCommand } from "@nsm-ts/sdk-linux";

/** TCP listeners started by a test; `close()` in afterEach. */
export class Listeners {
  readonly #children: ChildProcess[] = [];

  /** Listens on every port in `ports` (all addresses) inside `ns`, accepting and closing each connection. */
  async listen(ns: Netns, ports: readonly number[]): Promise<void> {
    const script = `const net=require("node:net");let n=0;for(const p of ${JSON.stringify(ports)}){net.createServer((s)=>{s.on("error",()=>{});s.end("ok")}).listen(p,"0.0.0.0",()=>{if(++n===${ports.length})console.log("ready")})}`;
    const child = spawn("nsenter", [`--net=${ns.path}`, process.execPath, "-e", script], { stdio: ["ignore", "pipe", "inherit"] });
    this.#children.push(child);
    if (child.stdout === null) throw new Error("listener did not start");
    await once(child.stdout, "data");
    child.stdout.resume();
  }

  async close(): Promise<void> {
    for (const c of this.#children.splice(0)) {
      if (c.exitCode !== null || c.signalCode !== null) continue;
      const exited = once(c, "exit");
      c.kill("SIGKILL");
      await exited;
    }
  }
}

/** True when a TCP connection from inside `ns` to `host:port` is established within `timeoutMs`. */
export async function connects(ns: Netns, host: string, port: number, timeoutMs = 1000): Promise<boolean> {
  const script = `const s=require("node:net").connect(${port},${JSON.stringify(host)},()=>process.exit(0));s.on("error",()=>process.exit(1));setTimeout(()=>process.exit(2),${timeoutMs})`;
  const r = await runCommand(ns.execArgv([process.execPath, "-e", script]));
  return r.code === 0;
}

/** An nft executor that reports every table it applied, so a test waits for the event instead of polling. */
export function spyingNft(): { exec: nft.NftExecutor; until(test: (t: nft.NftTable, ns: Netns) => boolean): Promise<void> } {
  const inner = nft.createNftExecutor();
  let waiters: Array<{ test: (t: nft.NftTable, ns: Netns) => boolean; resolve: () => void }> = [];
  return {
    exec: {
      ...inner,
      async apply(ns, table) {
        await inner.apply(ns, table);
        const still = [];
        for (const w of waiters) {
          if (w.test(table, ns)) w.resolve();
          else still.push(w);
        }
        waiters = still;
      },
    },
    until: (test) => new Promise((resolve) => waiters.push({ test, resolve })),
  };
}
