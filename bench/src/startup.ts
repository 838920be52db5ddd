/**
 * How long a program takes to start: `node <program> --help` (every static import loaded, then exit) run from its
 * bundle (`dist/bundle/main.js`, what the bin launcher runs after `npm run build`) and from its compiled modules
 * (`dist/main.js`), against a bare `node -e 0` in the same rounds. Rounds interleave the three, so a busy machine
 * slows all alike. `node bench/dist/startup.js [rounds=15]`; needs `npm run build` (the bundles).
 */
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { loadavg } from "node:os";
import { join } from "node:path";
import { repoRoot, stats } from "./lib/procs.js";

const rounds = Number(process.argv[2] ?? 15);

/** Wall time of one `node args…`, ms; throws when it fails. */
function timed(args: string[]): number {
  const t0 = performance.now();
  const r = spawnSync(process.execPath, args, { stdio: ["ignore", "ignore", "pipe"], encoding: "utf8" });
  const ms = performance.now() - t0;
  if (r.status !== 0) throw new Error(`node ${args.join(" ")} exited ${r.status}: ${r.stderr}`);
  return ms;
}

const workspaces = JSON.parse(readFileSync(join(repoRoot, "package.json"), "utf8")).workspaces as string[];
const programs = workspaces.filter(
  (w) => existsSync(join(repoRoot, w, "bin")) && existsSync(join(repoRoot, w, "dist", "bundle", "main.js")),
);
if (programs.length === 0) throw new Error("no program bundles: run npm run build first");

const samples = new Map<string, { bundle: number[]; modules: number[] }>(programs.map((p) => [p, { bundle: [], modules: [] }]));
const bare: number[] = [];
const load0 = loadavg()[0] ?? 0;
timed(["-e", "0"]);
for (let i = 0; i < rounds; i++) {
  bare.push(timed(["-e", "0"]));
  for (const p of programs) {
    const s = samples.get(p) as { bundle: number[]; modules: number[] };
    s.bundle.push(timed([join(repoRoot, p, "dist", "bundle", "main.js"), "--help"]));
    s.modules.push(timed([join(repoRoot, p, "dist", "main.js"), "--help"]));
  }
}
const med = (xs: number[]): number => stats(xs).p50;
const bareMs = med(bare);
const rows = programs.map((p) => {
  const s = samples.get(p) as { bundle: number[]; modules: number[] };
  const b = med(s.bundle);
  const m = med(s.modules);
  return `| ${p} | ${b.toFixed(0)} ms | ${m.toFixed(0)} ms | ${(b / m).toFixed(2)} × | ${(b - bareMs).toFixed(0)} / ${(m - bareMs).toFixed(0)} ms |`;
});
console.log(
  [
    `program start, \`--help\` (all static imports, then exit); median of ${rounds} interleaved rounds; bare \`node -e 0\` ${bareMs.toFixed(0)} ms; load ${load0.toFixed(2)} → ${(loadavg()[0] ?? 0).toFixed(2)}`,
    "",
    "| program | bundle | compiled modules | bundle ÷ modules | over bare node (bundle / modules) |",
    "|---|---|---|---|---|",
    ...rows,
  ].join("\n"),
);
