import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { once } from "node:events";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { expect } from "chai";
import { config } from "./config.js";

const program = "cmd-nsc";
const bin = fileURLToPath(new URL(`../bin/${program}.js`, import.meta.url));
/** A valid environment for the process tests (it must not bind well-known ports once run.ts serves). */
const validEnv: Record<string, string> = { NSM_NETWORK_SERVICES: "kernel://icmp-responder/nsm-1" };

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

  it("has upstream defaults and needs NSM_NETWORK_SERVICES", () => {
    const cfg = config.parse({ NSM_NETWORK_SERVICES: "icmp-responder" });
    expect(cfg).to.deep.include({
      connectTo: "unix:///var/lib/networkservicemesh/nsm.io.sock",
      labels: {},
      requestTimeout: 15_000,
      dialTimeout: 5000,
      nodeName: undefined,
      podName: undefined,
      clusterName: undefined,
    });
    expect(cfg.networkServices).to.deep.equal([{ mechanism: "KERNEL", networkService: "icmp-responder", labels: {} }]);
    expect(cfg.name).to.match(/^nsc-.+/);
    expect(() => config.parse({})).to.throw(/^NSM_NETWORK_SERVICES: is required/);
  });

  it("reads given values", () => {
    const cfg = config.parse({
      NSM_NETWORK_SERVICES: "kernel://icmp-responder/nsm-1?app=web, noop://other@remote.example",
      NSM_LABELS: "color=red,zone:a",
      NSM_REQUEST_TIMEOUT: "5s",
      NSM_DIAL_TIMEOUT: "200ms",
      POD_NAME: "client-1",
    });
    expect(cfg.networkServices).to.deep.equal([
      { mechanism: "KERNEL", networkService: "icmp-responder", ifName: "nsm-1", labels: { app: "web" } },
      { mechanism: "NOOP", networkService: "other@remote.example", labels: {} },
    ]);
    expect(cfg).to.deep.include({ labels: { color: "red", zone: "a" }, requestTimeout: 5000, dialTimeout: 200, podName: "client-1" });
  });

  it("names the variable of each bad value", () => {
    const bad: Record<string, string> = {
      NSM_CONNECT_TO: "unix://relative.sock",
      NSM_NETWORK_SERVICES: "bogus://svc",
      NSM_LABELS: "nokey",
      NSM_REQUEST_TIMEOUT: "15",
      NSM_DIAL_TIMEOUT: "5 s",
    };
    for (const [name, value] of Object.entries(bad)) {
      expect(() => config.parse({ NSM_NETWORK_SERVICES: "svc", [name]: value }), name).to.throw(new RegExp(`^${name}: `));
    }
    // A mechanism the URL syntax knows but this client cannot set up is a configuration error too.
    expect(() => config.parse({ NSM_NETWORK_SERVICES: "kernel://a, memif://b" })).to.throw(
      /^NSM_NETWORK_SERVICES: mechanism memif:\/\/ of "b" is not supported; use kernel:\/\/ or noop:\/\//,
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
    const env = envWith({ ...validEnv, NSM_NETWORK_SERVICES: "kernel://svc/interface-name-too-long" });
    const r = spawnSync(process.execPath, [bin], { env, encoding: "utf8", timeout: 15_000 });
    expect(r.status).to.equal(2);
    const lines = r.stderr.split("\n");
    expect(lines, r.stderr).to.have.length(2); // one line, then the final newline
    expect(lines[0]).to.equal(
      `${program}: NSM_NETWORK_SERVICES: invalid network service URL "kernel://svc/interface-name-too-long": ` +
        'interface name "interface-name-too-long" is longer than 15 characters; ' +
        "expected [mechanism://]service[@domain][/ifname][?label=value&...]",
    );
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
