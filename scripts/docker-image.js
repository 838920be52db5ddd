#!/usr/bin/env node
// The Dockerfile's last build step: lays out in <out-dir> the files of <program>'s image, from the current directory
// once `tsc -b <program>` and a production-only `npm ci` have run there. It copies the root package.json and
// node_modules and, for the program and every workspace it depends on (package.json dependencies, transitively),
// the workspace's package.json, node_modules, bin and dist without test files. The workspaces come from
// package.json, so adding one needs no change here. It fails when one of them has no dist: tsc -b did not reach
// it, its tsconfig references lack it.
// Usage: node scripts/docker-image.js <program> <out-dir>
import { cpSync, existsSync, lstatSync, readFileSync, rmSync } from "node:fs";
import { join, resolve } from "node:path";

const readJson = (f) => JSON.parse(readFileSync(f, "utf8"));
const isTestFile = (path) => /\.test\.[^/]*$/.test(path);

/** The workspace folders `program` needs at run time, itself first, from the package.json dependencies. */
function needed(workspaces, program) {
  const folderOf = new Map(workspaces.map((w) => [readJson(join(w, "package.json")).name, w]));
  const seen = [];
  const visit = (folder) => {
    if (seen.includes(folder)) return;
    seen.push(folder);
    for (const dep of Object.keys(readJson(join(folder, "package.json")).dependencies ?? {})) {
      const w = folderOf.get(dep);
      if (w !== undefined) visit(w);
    }
  };
  visit(program);
  return seen;
}

function main([program, outDir]) {
  if (program === undefined || outDir === undefined) throw new Error("usage: docker-image.js <program> <out-dir>");
  const { workspaces } = readJson("package.json");
  if (!workspaces.includes(program)) throw new Error(`${program} is not a workspace (${workspaces.join(", ")})`);
  const out = resolve(outDir);
  // Symlinks stay as they are: the workspace links in node_modules are relative and land on the copies.
  const copy = (path, filter = () => true) =>
    cpSync(path, join(out, path), { recursive: true, verbatimSymlinks: true, preserveTimestamps: true, filter });
  copy("package.json");
  copy("node_modules");
  const ship = needed(workspaces, program);
  for (const w of ship) {
    if (!existsSync(join(w, "dist"))) throw new Error(`${w} is not compiled: ${program}'s tsconfig.json must reference it`);
    for (const part of ["package.json", "node_modules", "bin"]) if (existsSync(join(w, part))) copy(join(w, part));
    copy(join(w, "dist"), (f) => !isTestFile(f));
  }
  // The links npm made for the workspaces left out would point nowhere.
  for (const w of workspaces.filter((x) => !ship.includes(x))) {
    const link = join(out, "node_modules", readJson(join(w, "package.json")).name);
    if (isLink(link)) rmSync(link);
    for (const bin of Object.keys(binsOf(w))) {
      const b = join(out, "node_modules", ".bin", bin);
      if (isLink(b)) rmSync(b);
    }
  }
  process.stdout.write(`${out}: ${ship.join(", ")}\n`);
}

function isLink(path) {
  try {
    return lstatSync(path).isSymbolicLink();
  } catch {
    return false;
  }
}

/** A package.json `bin` as an object (a string is a bin named after the package). */
function binsOf(w) {
  const pkg = readJson(join(w, "package.json"));
  return typeof pkg.bin === "string" ? { [pkg.name.replace(/^@[^/]+\//, "")]: pkg.bin } : (pkg.bin ?? {});
}

try {
  main(process.argv.slice(2));
} catch (err) {
  process.stderr.write(`docker-image.js: ${err.message}\n`);
  process.exit(1);
}
