import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { once } from "node:events";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { expect } from "chai";
import { config } from "./config.js";

const program = "cmd-registry";
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
      listenOn: ["tcp://:5002"],
      registryStore: { kind: "memory" },
      expirePeriod: 60_000,
      maxTokenLifetime: 600_000,
      logLevel: "info",
      telemetry: false,
      tlsCertFile: undefined,
    });
    expect(cfg.name).to.match(/^registry-.+/);
  });

  it("reads the etcd store and every listen URL", () => {
    const cfg = config.parse({
      NSM_REGISTRY_STORE: "etcd://127.0.0.1:2379, [::1]:2379",
      NSM_LISTEN_ON: "tcp://127.0.0.1:5002,unix:///tmp/registry.sock",
      NSM_EXPIRE_PERIOD: "30s",
      NSM_NAME: "registry-a",
    });
    expect(cfg.registryStore).to.deep.equal({ kind: "etcd", endpoints: ["127.0.0.1:2379", "[::1]:2379"] });
    expect(cfg.listenOn).to.deep.equal(["tcp://127.0.0.1:5002", "unix:///tmp/registry.sock"]);
    expect(cfg.expirePeriod).to.equal(30_000);
    expect(cfg.name).to.equal("registry-a");
  });

  it("names the variable of each bad value", () => {
    const bad: Record<string, string> = {
      NSM_LISTEN_ON: "http://x:1",
      NSM_REGISTRY_STORE: "redis://x:1",
      NSM_EXPIRE_PERIOD: "forever",
      NSM_MAX_TOKEN_LIFETIME: "10",
      NSM_LOG_LEVEL: "chatty",
      TELEMETRY: "on",
      NSM_METRICS_LISTEN_ON: "9090",
    };
    for (const [name, value] of Object.entries(bad)) {
      expect(() => config.parse({ [name]: value }), name).to.throw(new RegExp(`^${name}: `));
    }
    expect(() => config.parse({ NSM_REGISTRY_STORE: "etcd://" })).to.throw(/^NSM_REGISTRY_STORE: invalid etcd endpoint ""/);
    expect(() => config.parse({ NSM_TLS_CERT_FILE: "/c.pem", NSM_TLS_KEY_FILE: "/k.pem" })).to.throw(
      /^NSM_TLS_CA_FILE: .*must be set together or not at all/,
    );
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
    const env = envWith({ NSM_EXPIRE_PERIOD: "soon" });
    const r = spawnSync(process.execPath, [bin], { env, encoding: "utf8", timeout: 15_000 });
    expect(r.status).to.equal(2);
    const lines = r.stderr.split("\n");
    expect(lines, r.stderr).to.have.length(2); // one line, then the final newline
    expect(lines[0]).to.equal(`${program}: NSM_EXPIRE_PERIOD: invalid duration "soon": expected e.g. 500ms, 15s, 1m30s, 10m or 1h`);
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
