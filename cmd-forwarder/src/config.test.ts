import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { once } from "node:events";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { expect } from "chai";
import { config } from "./config.js";

const program = "cmd-forwarder";
const bin = fileURLToPath(new URL(`../bin/${program}.js`, import.meta.url));
/** A valid environment for the process tests (it must not bind well-known ports once run.ts serves). */
const validEnv: Record<string, string> = { NSM_LISTEN_ON: "tcp://127.0.0.1:0" };

/** The test runner's environment without any variable the program reads, plus `vars`. */
function envWith(vars: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const name of config.names()) delete env[name];
  return { ...env, ...vars };
}

describe(`${program} config`, () => {
  let child: ChildProcess | undefined;
  afterEach(async () => {
    if (child && child.exitCode === null && child.signalCode === null) {
      child.kill("SIGKILL");
      await once(child, "exit");
    }
    child = undefined;
  });

  it("has upstream defaults", () => {
    const cfg = config.parse({});
    expect(cfg).to.deep.include({
      listenOn: undefined,
      connectTo: "unix:///var/lib/networkservicemesh/nsm.io.sock",
      networkServiceName: "forwarder",
      labels: { p2p: "true" },
      forwarderMechanism: "NOOP",
      tunnelIp: undefined,
      vxlanPort: 4789,
      dialTimeout: 750,
      maxTokenLifetime: 600_000,
    });
    expect(cfg.name).to.match(/^forwarder-.+/);
  });

  it("reads given values", () => {
    const cfg = config.parse({
      NSM_LISTEN_ON: "unix:///tmp/fwd.sock",
      NSM_CONNECT_TO: "unix:///tmp/nsm.sock",
      NSM_NSNAME: "fwd",
      NSM_LABELS: "p2mp:true,zone:a",
      NSM_FORWARDER_MECHANISM: "kernel",
      NSM_TUNNEL_IP: "198.51.100.10",
      NSM_VXLAN_PORT: "4790",
    });
    expect(cfg).to.deep.include({
      listenOn: "unix:///tmp/fwd.sock",
      connectTo: "unix:///tmp/nsm.sock",
      networkServiceName: "fwd",
      labels: { p2mp: "true", zone: "a" },
      forwarderMechanism: "KERNEL",
      tunnelIp: "198.51.100.10",
      vxlanPort: 4790,
    });
  });

  it("names the variable of each bad value", () => {
    const bad: Record<string, string> = {
      NSM_LISTEN_ON: "/tmp/fwd.sock",
      NSM_CONNECT_TO: "tcp://nsmgr",
      NSM_LABELS: "p2p",
      NSM_FORWARDER_MECHANISM: "vpp",
      NSM_TUNNEL_IP: "198.51.100.0/24",
      NSM_VXLAN_PORT: "0",
      NSM_DIAL_TIMEOUT: "fast",
      NSM_METRICS_LISTEN_ON: "unix:///m.sock",
    };
    for (const [name, value] of Object.entries(bad)) {
      expect(() => config.parse({ [name]: value }), name).to.throw(new RegExp(`^${name}: `));
    }
  });

  it("README.md shows the current --help table (regenerate it when the table changes)", () => {
    const readme = readFileSync(new URL("../README.md", import.meta.url), "utf8");
    expect(readme).to.contain(config.help(program).trimEnd());
  });

  it("--help of the built program lists every variable and exits 0", () => {
    const r = spawnSync(process.execPath, [bin, "--help"], { env: envWith({}), encoding: "utf8", timeout: 15_000 });
    expect(r.status).to.equal(0);
    for (const name of config.names()) expect(r.stdout).to.match(new RegExp(`^  ${name} `, "m"));
  });

  it("a bad variable makes the built program print one line naming it and exit 2", () => {
    const env = envWith({ ...validEnv, NSM_FORWARDER_MECHANISM: "vpp" });
    const r = spawnSync(process.execPath, [bin], { env, encoding: "utf8", timeout: 15_000 });
    expect(r.status).to.equal(2);
    const lines = r.stderr.split("\n");
    expect(lines, r.stderr).to.have.length(2); // one line, then the final newline
    expect(lines[0]).to.equal(`${program}: NSM_FORWARDER_MECHANISM: invalid value "vpp": expected one of NOOP, KERNEL`);
    expect(r.stdout).to.equal("");
  });

  it("SIGTERM makes the running program exit 0", async () => {
    const c = spawn(process.execPath, [bin], { env: envWith(validEnv), stdio: ["ignore", "pipe", "pipe"] });
    child = c;
    let out = "";
    c.stdout?.setEncoding("utf8");
    // The first log line means runMain installed its signal handlers and run() started.
    await new Promise<void>((resolve, reject) => {
      c.stdout?.on("data", (s: string) => {
        out += s;
        if (out.includes("\n")) resolve();
      });
      c.once("exit", (code) => reject(new Error(`exited early with ${code}: ${out}`)));
    });
    const exited = once(c, "exit");
    c.kill("SIGTERM");
    const [code, signal] = (await exited) as [number | null, NodeJS.Signals | null];
    expect({ code, signal }).to.deep.equal({ code: 0, signal: null });
  });
});
