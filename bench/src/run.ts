/**
 * Runs the benchmarks: every module it knows, or those named on the command line
 * (`node bench/dist/run.js transport statedb`). Each runs in its own process so one module's servers,
 * timers or memory never skew the next.
 */
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";

/** Bench modules in the order they run; each is `bench/dist/<name>.js` and prints its own results. */
export const benchModules = ["transport", "statedb", "registry", "kernel"] as const;

function runOne(name: string): Promise<number> {
  const file = fileURLToPath(new URL(`./${name}.js`, import.meta.url));
  if (!existsSync(file)) {
    process.stderr.write(`bench: unknown module ${name} (known: ${benchModules.join(", ")})\n`);
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
for (const name of names.length > 0 ? names : benchModules) {
  if ((await runOne(name)) !== 0) failed++;
}
process.exitCode = failed > 0 ? 1 : 0;
