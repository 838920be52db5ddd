#!/usr/bin/env node
// Bundles every program (a workspace with a `bin` and a compiled `dist/main.js`) into `dist/bundle/main.js` with
// esbuild, after `tsc -b`: the program's code, the workspaces it uses and its pure-JavaScript dependencies in one
// ES module, which Node loads in about a third of the time of the separate modules. The bin launcher
// (`@nsm-ts/base/launch`) runs the bundle only while none of its inputs (listed in `dist/bundle/inputs.json`) has
// changed since. Left out of the bundle: the packages loaded on first use (`base/src/lazy.ts`), which stay
// optional and keep reading their own files.
// Usage: node scripts/bundle.js [workspace ...]   (default: every program among the workspaces)
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { LAZY_PACKAGES } from "@nsm-ts/base/launch";
import { build } from "esbuild";

const root = resolve(import.meta.dirname, "..");
const workspaces =
  process.argv.length > 2 ? process.argv.slice(2) : JSON.parse(readFileSync(join(root, "package.json"), "utf8")).workspaces;

const programs = workspaces.filter(
  (ws) =>
    JSON.parse(readFileSync(join(root, ws, "package.json"), "utf8")).bin !== undefined && existsSync(join(root, ws, "dist", "main.js")),
);
await Promise.all(programs.map(bundle));

async function bundle(ws) {
  const entry = join(root, ws, "dist", "main.js");
  const outfile = join(root, ws, "dist", "bundle", "main.js");
  const t0 = performance.now();
  const result = await build({
    entryPoints: [entry],
    // The metafile names inputs relative to this folder, whatever the caller's working directory.
    absWorkingDir: root,
    outfile,
    bundle: true,
    platform: "node",
    format: "esm",
    target: "node20",
    // Kept as imports, so a static import of one would show as loaded at start (the shared program test).
    external: [...LAZY_PACKAGES],
    // Bundled CommonJS dependencies call require() for Node's built-ins; an ES module has none of its own.
    banner: {
      js: "import { createRequire as __nsmCreateRequire } from 'node:module'; const require = __nsmCreateRequire(import.meta.url);",
    },
    // Class and function names stay as written: errors and logs show them.
    keepNames: true,
    // Maps to the TypeScript sources through the compiled files' own maps (node --enable-source-maps uses them).
    sourcemap: "linked",
    metafile: true,
    logLevel: "warning",
  });
  const dir = dirname(outfile);
  // The workspaces' compiled files only: a dependency changes with `npm ci`, which a build always follows, and
  // leaving node_modules out keeps a bundle current in an image whose production node_modules were installed after it.
  const inputs = Object.keys(result.metafile.inputs)
    .filter((f) => !f.includes("node_modules/"))
    .map((f) => relative(dir, resolve(root, f)));
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, "inputs.json"), `${JSON.stringify(inputs)}\n`);
  const ms = (performance.now() - t0).toFixed(0);
  process.stdout.write(`bundled ${ws} (${inputs.length} compiled files) in ${ms} ms\n`);
}
