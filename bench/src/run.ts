/**
 * Runs the benchmarks: every bench module (each `bench/dist/<name>.js` beside this file), or only those
 * named on the command line (`node bench/dist/run.js transport statedb`). Each runs in its own process so
 * one module's servers, timers or memory never skew the next; modules that need something missing (root,
 * etcd) skip themselves with a one-line reason.
 */
import { spawn } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));

/** Names of the bench modules found beside this file, transport first (the others build on it). */
export function benchModules(): string[] {
  const names = readdirSync(here)
    .filter((f) => f.endsWith(".js") && f !== "run.js" && !f.endsWith(".test.js"))
    .map((f) => f.slice(0, -".js".length))
    .sort();
  return [...names.filter((n) => n === "transport"), ...names.filter((n) => n !== "transport")];
}

function runOne(name: string): Promise<number> {
  const file = join(here, `${name}.js`);
  if (!existsSync(file)) {
    process.stderr.write(`bench: unknown module ${name} (known: ${benchModules().join(", ")})\n`);
    return Promise.resolve(2);
  }
  process.stdout.write(`\n## ${name}\n\n`);
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ["--enable-source-maps", file], { stdio: "inherit" });
    child.on("exit", (code, signal) => resolve(code ?? (signal ? 1 : 0)));
  });
}

const names = process.argv.slice(2);
let failed = 0;
for (const name of names.length > 0 ? names : benchModules()) {
  if ((await runOne(name)) !== 0) failed++;
}
process.exitCode = failed > 0 ? 1 : 0;
