/**
 * The documentation bar of the repository: every workspace has a README with a title and at least one code
 * example, and the TypeDoc entry points (typedoc.json) are exactly the public export paths of the published packages, so `npm run docs` documents every import path users have and nothing that does not exist.
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { expect } from "chai";

const repo = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const readJson = (path: string): unknown => JSON.parse(readFileSync(join(repo, path), "utf8"));

/** Expands one `*` path segment against the file system (enough for `sdk/src/tools/*\/index.ts`). */
function expand(pattern: string): string[] {
  const star = pattern.indexOf("*");
  if (star < 0) return existsSync(join(repo, pattern)) ? [pattern] : [];
  const dir = pattern.slice(0, star);
  const rest = pattern.slice(star + 1);
  return readdirSync(join(repo, dir), { withFileTypes: true })
    .filter((d) => d.isDirectory())
    .map((d) => `${dir}${d.name}${rest}`)
    .filter((p) => existsSync(join(repo, p)))
    .sort();
}

/** The source file behind a package export target (`./dist/x/index.js` → `<pkg>/src/x/index.ts`). */
function sourceOf(pkg: string, target: string): string {
  const rel = target.replace(/^\.\/dist\//, "").replace(/\.js$/, ".ts");
  return `${pkg}/${rel.startsWith("src/") ? rel : `src/${rel}`}`;
}

/** The packages users install (the others are private: programs, tests, examples, benchmarks, test support). */
const PUBLISHED = ["api", "base", "statedb", "resources", "services", "sdk", "sdk-linux"];

/** Export paths whose module only re-exports another documented entry point. */
const REEXPORTS: Record<string, string> = { "api/src/index.ts": "api/src/constants.ts" };

describe("documentation", () => {
  it("every workspace has a README with a title and a code example", () => {
    const workspaces = (readJson("package.json") as { workspaces: string[] }).workspaces;
    const missing: string[] = [];
    for (const ws of workspaces) {
      const path = join(repo, ws, "README.md");
      if (!existsSync(path)) {
        missing.push(`${ws}: no README.md`);
        continue;
      }
      const text = readFileSync(path, "utf8");
      if (!text.startsWith("# ")) missing.push(`${ws}: README.md does not start with a title`);
      if (!/\n```[a-z]*\n[\s\S]+?\n```/.test(text)) missing.push(`${ws}: README.md has no code example`);
    }
    expect(missing).to.deep.equal([]);
  });

  it("TypeDoc documents exactly the public export paths of the published packages", () => {
    const cfg = readJson("typedoc.json") as { entryPoints: string[] };
    const entries = cfg.entryPoints.flatMap(expand);
    expect(entries.length, "entry points that exist").to.be.at.least(cfg.entryPoints.length);
    for (const e of cfg.entryPoints) expect(expand(e), `${e} matches no file`).to.not.deep.equal([]);
    const exported: string[] = [];
    for (const pkg of PUBLISHED) {
      const exportsField = (readJson(`${pkg}/package.json`) as { exports: Record<string, { default: string }> }).exports;
      for (const { default: target } of Object.values(exportsField)) exported.push(...expand(sourceOf(pkg, target)));
    }
    const documented = exported.map((f) => REEXPORTS[f] ?? f);
    expect([...new Set(documented)].sort()).to.deep.equal([...new Set(entries)].sort());
    for (const [file, target] of Object.entries(REEXPORTS)) {
      expect(readFileSync(join(repo, file), "utf8"), file).to.contain(`from "./${target.split("/").pop()?.replace(/\.ts$/, ".js")}"`);
    }
  });

  it("docs/architecture.md names every workspace and only paths that exist", () => {
    const text = readFileSync(join(repo, "docs/architecture.md"), "utf8");
    const workspaces = (readJson("package.json") as { workspaces: string[] }).workspaces;
    expect(workspaces.filter((ws) => !new RegExp(`(^|[^\\w-])${ws}([^\\w-]|$)`, "m").test(text))).to.deep.equal([]);
    // Backticked repository paths (`sdk/src/…`, `base/src/context/call.ts`, …) must exist.
    const roots = [...workspaces, "docs", "scripts", "deployments", ".dependency-cruiser.cjs", "Dockerfile"];
    const paths = [...text.matchAll(/`([.\w-]+\/[\w./-]*)`/g)]
      .map((m) => m[1] as string)
      .filter((p) => roots.some((r) => p.startsWith(`${r}/`) || p === r));
    expect(paths.length).to.be.greaterThan(10);
    expect(paths.filter((p) => !existsSync(join(repo, p)))).to.deep.equal([]);
  });

  it("testing/README.md lists every export path of @nsm-ts/testing", () => {
    const text = readFileSync(join(repo, "testing/README.md"), "utf8");
    const paths = Object.keys((readJson("testing/package.json") as { exports: Record<string, unknown> }).exports);
    expect(paths.filter((p) => !text.includes(`\`@nsm-ts/testing/${p.slice(2)}\``))).to.deep.equal([]);
  });
});
