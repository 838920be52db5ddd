/**
 * The process-level tests every `cmd-*` program shares (README help table, `--help`, no heavy package loaded at
 * start, a bad variable, SIGTERM), written once so the programs' `config.test.ts` files keep only what differs
 * between them. Mocha and chai are the repository's dev dependencies (chai an optional peer of @nsm-ts/sdk); only
 * test files import this module.
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { once } from "node:events";
import { readFileSync } from "node:fs";
import type { ConfigSchema, ConfigVar } from "@nsm-ts/base/config";
import { LAZY_PACKAGES, type LazyPackage } from "@nsm-ts/base/launch";
import { expect } from "chai";

/**
 * Which of `LAZY_PACKAGES` (`@nsm-ts/base/launch`: packages no program may load at start, each ~0.1–0.2 s of
 * CPU) a fresh Node process has loaded when it exits after `args` (a script and its arguments, or `-e` and code)
 * ran in `cwd`. CommonJS packages, also those imported from ESM, end up in the CJS module cache.
 */
export function lazyPackagesLoaded(cwd: string, args: readonly string[], env: NodeJS.ProcessEnv = process.env): LazyPackage[] {
  const report = `import M from "node:module"; process.on("exit", () => process.stderr.write("\\nLOADED " + JSON.stringify(Object.keys(M._cache))));`;
  const r = spawnSync(process.execPath, ["--import", `data:text/javascript,${encodeURIComponent(report)}`, ...args], {
    cwd,
    env,
    encoding: "utf8",
    timeout: 15_000,
  });
  const line = r.stderr.split("\n").find((l) => l.startsWith("LOADED "));
  if (line === undefined) throw new Error(`no module list from node ${args.join(" ")} (exit ${r.status}): ${r.stderr}`);
  const files = JSON.parse(line.slice("LOADED ".length)) as string[];
  return LAZY_PACKAGES.filter((p) => files.some((f) => f.includes(`/node_modules/${p}/`)));
}

/** Options of `describeProgramProcess`. */
export interface ProgramProcessOptions<S extends Record<string, ConfigVar<unknown>>> {
  /** The program's name, as its `--help` and its error lines print it, e.g. `cmd-registry`. */
  program: string;
  /** Path of the built `bin/<program>.js`; the caller resolves it from its own test file, as each package lays out its own dist. */
  bin: string;
  /** The program's environment table. */
  config: ConfigSchema<S>;
  /** The program's README, which must contain the current `--help` table. */
  readme: URL | string;
  /** Variables with which the program starts and runs until signalled (it must not bind well-known ports). */
  validEnv: Record<string, string>;
  /** Variables that make the program refuse to start, and the one stderr line (without its newline) it must print. */
  badVariable: { env: Record<string, string>; line: string };
}

/** The test runner's environment without any variable `config` reads, plus `vars`, so the developer's shell cannot change an outcome. */
export function envWithout<S extends Record<string, ConfigVar<unknown>>>(
  config: ConfigSchema<S>,
  vars: Record<string, string>,
): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const name of config.names()) delete env[name];
  return { ...env, ...vars };
}

/**
 * Declares, inside the caller's `describe`, the tests of the built program every `cmd-*` must pass, and an
 * `afterEach` that kills a child a failed test left running.
 */
export function describeProgramProcess<S extends Record<string, ConfigVar<unknown>>>(opts: ProgramProcessOptions<S>): void {
  const { program, bin, config } = opts;
  let child: ChildProcess | undefined;
  afterEach(async () => {
    if (child && child.exitCode === null && child.signalCode === null) {
      child.kill("SIGKILL");
      await once(child, "exit");
    }
    child = undefined;
  });

  it("README.md shows the current --help table (regenerate it when the table changes)", () => {
    const readme = readFileSync(opts.readme, "utf8");
    expect(readme).to.contain(config.help(program).trimEnd());
  });

  it("--help of the built program lists every variable and exits 0", () => {
    const r = spawnSync(process.execPath, [bin, "--help"], { env: envWithout(config, {}), encoding: "utf8", timeout: 15_000 });
    expect(r.status).to.equal(0);
    for (const name of config.names()) expect(r.stdout).to.match(new RegExp(`^  ${name} `, "m"));
  });

  it("the built program loads none of etcd3, the OpenTelemetry SDK or Connect's adapter at start", () => {
    // --help runs after every static import of the program, so the whole start-up module graph is loaded.
    expect(lazyPackagesLoaded(process.cwd(), [bin, "--help"], envWithout(config, {}))).to.deep.equal([]);
  });

  it("a bad variable makes the built program print one line naming it and exit 2", () => {
    const env = envWithout(config, opts.badVariable.env);
    const r = spawnSync(process.execPath, [bin], { env, encoding: "utf8", timeout: 15_000 });
    expect(r.status).to.equal(2);
    const lines = r.stderr.split("\n");
    expect(lines, r.stderr).to.have.length(2); // one line, then the final newline
    expect(r.stderr).to.equal(`${opts.badVariable.line}\n`);
    expect(r.stdout).to.equal("");
  });

  it("SIGTERM makes the running program exit 0", async () => {
    const c = spawn(process.execPath, [bin], { env: envWithout(config, opts.validEnv), stdio: ["ignore", "pipe", "pipe"] });
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
}
