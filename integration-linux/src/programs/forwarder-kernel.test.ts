/**
 * cmd-forwarder with NSM_FORWARDER_MECHANISM=KERNEL refuses to start without the privileges the kernel data
 * plane needs, with one message that says what is missing (run under `setpriv` with NET_ADMIN and SYS_ADMIN
 * dropped from the bounding set, or as an unprivileged user when not root).
 */
import { spawn, spawnSync } from "node:child_process";
import { once } from "node:events";
import { join } from "node:path";
import { expect } from "chai";
import { repoRoot } from "./harness.js";

const hasSetpriv = spawnSync("setpriv", ["--version"], { stdio: "ignore" }).status === 0;

describe("cmd-forwarder KERNEL without privileges", function () {
  this.timeout(30_000);

  it("fails at start naming the missing capabilities, exit 1", async function () {
    if (!hasSetpriv) this.skip();
    const isRoot = process.getuid?.() === 0;
    const drop = isRoot ? ["--bounding-set=-net_admin,-sys_admin"] : [];
    const bin = join(repoRoot, "cmd-forwarder", "bin", "cmd-forwarder.js");
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      NSM_FORWARDER_MECHANISM: "KERNEL",
      NSM_LISTEN_ON: "tcp://127.0.0.1:0",
      NSM_LOG_LEVEL: "INFO",
    };
    const child = spawn("setpriv", [...drop, process.execPath, bin], { env, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    child.stdout.setEncoding("utf8").on("data", (s: string) => (out += s));
    child.stderr.setEncoding("utf8").on("data", (s: string) => (out += s));
    const [code] = (await once(child, "exit")) as [number | null];
    expect(code, out).to.equal(1);
    const fatal = out
      .split("\n")
      .filter((l) => l.startsWith("{"))
      .map((l) => JSON.parse(l) as { level: number; msg: string })
      .find((r) => r.level === 60);
    expect(fatal?.msg, out).to.match(/NSM_FORWARDER_MECHANISM=KERNEL cannot run here: .*CAP_NET_ADMIN/);
  });
});
