#!/usr/bin/env node
// Runs every workspace's compiled tests (`<pkg>/dist/**/*.test.js`) in one mocha run, so the counts add up,
// and closes with the line CI reads: `N passed, N failed, N skipped`.
// Usage: node scripts/test-all.js [workspace ...]   (default: all workspaces from package.json)
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import Mocha from "mocha";

const root = resolve(import.meta.dirname, "..");
const rc = JSON.parse(readFileSync(join(root, ".mocharc.json"), "utf8"));
const workspaces =
  process.argv.length > 2 ? process.argv.slice(2) : JSON.parse(readFileSync(join(root, "package.json"), "utf8")).workspaces;

const mocha = new Mocha({ timeout: rc.timeout, reporter: rc.reporter });
for (const ws of workspaces) {
  const dist = join(root, ws, "dist");
  if (!existsSync(dist)) continue;
  for (const f of readdirSync(dist, { recursive: true }).map(String).sort()) {
    if (f.endsWith(".test.js")) mocha.addFile(join(dist, f));
  }
}
await mocha.loadFilesAsync();
const runner = mocha.run((failures) => {
  process.exitCode = failures > 0 ? 1 : 0;
});
// Wall time per test file (its top-level suites), so a slow CI run shows where the time went.
const fileMs = new Map();
const started = new Map();
runner.on("suite", (suite) => {
  if (suite.file && suite.parent?.root) started.set(suite, performance.now());
});
runner.on("suite end", (suite) => {
  const t0 = started.get(suite);
  if (t0 === undefined) return;
  const file = suite.file.slice(root.length + 1);
  fileMs.set(file, (fileMs.get(file) ?? 0) + performance.now() - t0);
});
runner.on("end", () => {
  const slowest = [...fileMs].sort((a, b) => b[1] - a[1]).slice(0, 12);
  console.log("\nslowest test files:");
  for (const [file, ms] of slowest) console.log(`  ${(ms / 1000).toFixed(1).padStart(6)} s  ${file}`);
  const s = runner.stats ?? { passes: 0, failures: 0, pending: 0 };
  console.log(`${s.passes} passed, ${s.failures} failed, ${s.pending} skipped`);
});
