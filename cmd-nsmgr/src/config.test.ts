import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { once } from "node:events";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { expect } from "chai";
import { config } from "./config.js";

const program = "cmd-nsmgr";
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
      listenOn: ["unix:///var/lib/networkservicemesh/nsm.io.sock", "tcp://:5001"],
      registryUrl: "tcp://127.0.0.1:5002",
      forwarderNetworkServiceName: "forwarder",
      dialTimeout: 750,
      requestTimeout: 15_000,
      maxTokenLifetime: 600_000,
      logLevel: "info",
      podName: undefined,
      clusterName: undefined,
    });
    expect(cfg.name).to.match(/^nsmgr-.+/);
    expect(cfg.nodeName).to.be.a("string").and.not.equal("");
  });

  it("reads given values", () => {
    const cfg = config.parse({
      NSM_LISTEN_ON: "unix:///tmp/nsm.sock",
      NSM_REGISTRY_URL: "tcp://[::1]:5002",
      NODE_NAME: "node-1",
      POD_NAME: "nsmgr-abc",
      CLUSTER_NAME: "c1",
      NSM_FORWARDER_NETWORK_SERVICE_NAME: "fwd",
      NSM_DIAL_TIMEOUT: "1s",
      NSM_REQUEST_TIMEOUT: "1m30s",
      NSM_LOG_LEVEL: "TRACE",
    });
    expect(cfg).to.deep.include({
      listenOn: ["unix:///tmp/nsm.sock"],
      registryUrl: "tcp://[::1]:5002",
      nodeName: "node-1",
      podName: "nsmgr-abc",
      clusterName: "c1",
      forwarderNetworkServiceName: "fwd",
      dialTimeout: 1000,
      requestTimeout: 90_000,
      logLevel: "trace",
    });
  });

  it("names the variable of each bad value", () => {
    const bad: Record<string, string> = {
      NSM_LISTEN_ON: "unix:///ok.sock,tcp://nope",
      NSM_REGISTRY_URL: "localhost:5002",
      NSM_DIAL_TIMEOUT: "1",
      NSM_REQUEST_TIMEOUT: "-1s",
      NSM_MAX_TOKEN_LIFETIME: "10 m",
      NSM_LOG_LEVEL: "chatty",
      TELEMETRY: "on",
      NSM_OPEN_TELEMETRY_ENDPOINT: "collector",
    };
    for (const [name, value] of Object.entries(bad)) {
      expect(() => config.parse({ [name]: value }), name).to.throw(new RegExp(`^${name}: `));
    }
    expect(() => config.parse({ NSM_TLS_KEY_FILE: "/k.pem" })).to.throw(/^NSM_TLS_CERT_FILE: .*must be set together or not at all/);
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
    const env = envWith({ ...validEnv, NSM_REGISTRY_URL: "registry:5002" });
    const r = spawnSync(process.execPath, [bin], { env, encoding: "utf8", timeout: 15_000 });
    expect(r.status).to.equal(2);
    const lines = r.stderr.split("\n");
    expect(lines, r.stderr).to.have.length(2); // one line, then the final newline
    expect(lines[0]).to.equal(`${program}: NSM_REGISTRY_URL: invalid URL "registry:5002": expected tcp://host:port or unix:///path`);
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
