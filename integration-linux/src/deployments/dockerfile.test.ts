/**
 * The one Dockerfile (repository root) against the workspace it builds from. No Docker engine runs in CI, so instead
 * of building the images this checks what drifts when the code moves. For every program (a workspace with
 * `bin/<name>.js`), every workspace it depends on (package.json dependencies, transitively) is installed, compiled
 * and shipped, the entrypoint is the program's bin and is in the image, the image runs as `node` except the
 * forwarder's, and it exposes the tcp ports the program listens on by default. The workspaces come from the root
 * package.json here as in the Dockerfile, so a new workspace is covered without a change to either.
 */
import { spawnSync } from "node:child_process";
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  realpathSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, relative } from "node:path";
import { pathToFileURL } from "node:url";
import { expect } from "chai";
import { PROGRAMS, repoRoot } from "../programs/harness.js";

interface Stage {
  /** The `AS` name; undefined for an unnamed stage. */
  name: string | undefined;
  /** The FROM argument: an image or an earlier stage, possibly `${ARG}`. */
  from: string;
  lines: string[];
}

/**
 * The Dockerfile's instructions (continuation lines joined, comments dropped): those before the first FROM, and
 * the rest grouped by FROM stage.
 */
export function stagesOf(dockerfile: string): { global: string[]; stages: Stage[] } {
  const global: string[] = [];
  const stages: Stage[] = [];
  for (const raw of dockerfile.replace(/\\\n/g, " ").split("\n")) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) continue;
    const from = /^FROM\s+(\S+)(?:\s+AS\s+(\S+))?/i.exec(line);
    if (from) stages.push({ name: from[2], from: from[1] as string, lines: [] });
    else (stages.at(-1)?.lines ?? global).push(line);
  }
  return { global, stages };
}

/** The exact-path patterns of a .dockerignore as regular expressions (`**` any depth, `*` within one name). */
function ignorePatterns(text: string): RegExp[] {
  return text
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l !== "" && !l.startsWith("#"))
    .map((p) => {
      expect(p.startsWith("!"), `${p}: exceptions are not modelled here`).to.equal(false);
      const re = p
        .replace(/^\/+/, "")
        .split(/(\*\*\/|\*\*|\*|\?)/)
        .map((part) => ({ "**/": "(?:.*/)?", "**": ".*", "*": "[^/]*", "?": "[^/]" })[part] ?? part.replace(/[.+^${}()|[\]\\]/g, "\\$&"))
        .join("");
      return new RegExp(`^${re}$`);
    });
}

/** Whether the build context leaves out `path` (relative to the root): it or a folder above it matches. */
function ignored(patterns: RegExp[], path: string): boolean {
  const parts = path.split("/");
  return parts.some((_, i) => patterns.some((re) => re.test(parts.slice(0, i + 1).join("/"))));
}

// biome-ignore lint/suspicious/noTemplateCurlyInString: the Dockerfile's reference to its build argument, no template.
const PROGRAM_REF = "${PROGRAM}";

const readJson = <T>(path: string): T => JSON.parse(readFileSync(path, "utf8")) as T;
interface Pkg {
  name: string;
  workspaces?: string[];
  dependencies?: Record<string, string>;
  bin?: string | Record<string, string>;
}

const rootPkg = readJson<Pkg>(join(repoRoot, "package.json"));
const workspaces = rootPkg.workspaces ?? [];
const pkgOf = (w: string) => readJson<Pkg>(join(repoRoot, w, "package.json"));
/** The programs: workspaces that have `bin/<folder>.js`. */
const programs = workspaces.filter((w) => existsSync(join(repoRoot, w, "bin", `${w}.js`)));

/** The workspace folders `w` depends on at run time, itself included, from the package.json dependencies. */
function dependencies(w: string, seen = new Set<string>()): Set<string> {
  if (seen.has(w)) return seen;
  seen.add(w);
  for (const name of Object.keys(pkgOf(w).dependencies ?? {})) {
    const dep = workspaces.find((x) => pkgOf(x).name === name);
    if (dep !== undefined) dependencies(dep, seen);
  }
  return seen;
}

/** The workspace folders `tsc -b <w>` compiles, from the tsconfig project references. */
function referenced(w: string, seen = new Set<string>()): Set<string> {
  if (seen.has(w)) return seen;
  seen.add(w);
  const tsconfig = readJson<{ references?: Array<{ path: string }> }>(join(repoRoot, w, "tsconfig.json"));
  for (const r of tsconfig.references ?? []) referenced(r.path.replace(/^\.\.\//, ""), seen);
  return seen;
}

const text = readFileSync(join(repoRoot, "Dockerfile"), "utf8");
const { global, stages } = stagesOf(text);
const stage = (name: string): Stage => {
  const s = stages.find((x) => x.name === name);
  if (!s) throw new Error(`the Dockerfile has no stage ${name}`);
  return s;
};
/** The stages an image of `program` is made of, the final one first, following FROM with PROGRAM=`program`. */
function chainOf(program: string): Stage[] {
  const chain: Stage[] = [];
  for (let s = stages.at(-1); s !== undefined; ) {
    chain.push(s);
    const base: string = s.from.replace(/^\$\{?PROGRAM\}?$/, program);
    s = stages.find((x) => x.name === base);
  }
  return chain;
}
/** The argument of the last `keyword` instruction along the chain (the nearest to the final stage wins). */
const last = (chain: Stage[], keyword: string): string | undefined =>
  chain
    .flatMap((s) => s.lines.filter((l) => l.startsWith(`${keyword} `)).slice(-1))
    .at(0)
    ?.slice(keyword.length + 1)
    .trim();
/** The text of a stage's RUN instructions. */
const runs = (s: Stage): string => s.lines.filter((l) => l.startsWith("RUN ")).join("\n");

/** A tree as the build stage has it before the image is laid out: workspaces with dist, node_modules with links. */
function fakeBuildTree(dir: string): void {
  cpSync(join(repoRoot, "package.json"), join(dir, "package.json"));
  mkdirSync(join(dir, "node_modules", ".bin"), { recursive: true });
  mkdirSync(join(dir, "node_modules", "some-dep"));
  writeFileSync(join(dir, "node_modules", "some-dep", "index.js"), "");
  for (const w of workspaces) {
    const pkg = pkgOf(w);
    cpSync(join(repoRoot, w, "package.json"), join(dir, w, "package.json"));
    if (existsSync(join(repoRoot, w, "bin"))) cpSync(join(repoRoot, w, "bin"), join(dir, w, "bin"), { recursive: true });
    mkdirSync(join(dir, w, "dist"));
    mkdirSync(join(dir, w, "node_modules", "nested-dep"), { recursive: true });
    writeFileSync(join(dir, w, "node_modules", "nested-dep", "index.js"), "");
    for (const f of ["main.js", "main.test.js", "main.test.js.map", "main.test.d.ts"]) writeFileSync(join(dir, w, "dist", f), "");
    // As npm links a workspace: a relative symlink by package name, and its bins in .bin.
    const link = join(dir, "node_modules", pkg.name);
    mkdirSync(dirname(link), { recursive: true });
    symlinkSync(relative(dirname(link), join(dir, w)), link);
    const bins = typeof pkg.bin === "string" ? { [pkg.name]: pkg.bin } : (pkg.bin ?? {});
    for (const [bin, path] of Object.entries(bins)) symlinkSync(join("..", pkg.name, path), join(dir, "node_modules", ".bin", bin));
  }
}

describe("deployments: the Dockerfile", () => {
  it("is the only one, and the programs are the ones the harness knows", () => {
    expect(programs).to.have.members([...PROGRAMS]);
    for (const w of workspaces) expect(existsSync(join(repoRoot, w, "Dockerfile")), `${w}/Dockerfile`).to.equal(false);
  });

  it("lists no workspace: it reads them from package.json, and every one is in the lock file npm ci installs from", () => {
    const instructions = [...global, ...stages.flatMap((s) => [s.from, ...s.lines])].join("\n");
    // A list would name a workspace's folder as a relative path (`COPY sdk/package.json sdk/`).
    for (const w of workspaces.filter((x) => !programs.includes(x))) {
      expect(instructions, `${w}/ named in an instruction`).not.to.match(new RegExp(`(^|[\\s"'=])${w}/`, "m"));
    }
    const lock = readJson<{ packages: Record<string, { workspaces?: string[] }> }>(join(repoRoot, "package-lock.json"));
    expect(lock.packages[""]?.workspaces, "package-lock.json is out of date").to.deep.equal(workspaces);
    for (const w of workspaces) expect(lock.packages[w], `package-lock.json: ${w}`).to.not.equal(undefined);
  });

  it("copies every workspace's package.json to where npm ci runs (the manifests stage's own RUN, replayed)", () => {
    const manifests = stage("manifests");
    expect(manifests.lines).to.include("COPY . .");
    const out = mkdtempSync(join(tmpdir(), "nsm-dockerfile-manifests-"));
    try {
      // The RUN reads package.json files only, so the repository stands in for the context copied to /src.
      const r = spawnSync("sh", ["-c", runs(manifests).replace(/^RUN /gm, "").replaceAll("/manifests/", `${out}/`)], {
        cwd: repoRoot,
        encoding: "utf8",
      });
      expect(r.status, r.stderr).to.equal(0);
      for (const f of ["package.json", "package-lock.json", ...workspaces.map((w) => `${w}/package.json`)]) {
        expect(existsSync(join(out, f)), f).to.equal(true);
        expect(readFileSync(join(out, f), "utf8"), f).to.equal(readFileSync(join(repoRoot, f), "utf8"));
      }
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
    const build = stage("build").lines;
    const at = (l: string | RegExp) => build.findIndex((x) => (typeof l === "string" ? x === l : l.test(x)));
    expect(at("COPY --from=manifests /manifests/ ./"), "manifests copied").to.be.at.least(0);
    expect(at(/^RUN npm ci --ignore-scripts\b/)).to.be.above(at("COPY --from=manifests /manifests/ ./"));
    expect(at("COPY . ."), "the sources come after npm ci").to.be.above(at(/^RUN npm ci --ignore-scripts\b/));
  });

  it("takes PROGRAM as a build argument and makes the image from PROGRAM's stage", () => {
    expect(global).to.deep.equal(["ARG PROGRAM"]);
    expect(stage("build").lines).to.include("ARG PROGRAM");
    expect(stages.at(-1)?.from).to.equal(PROGRAM_REF);
    for (const p of programs) expect(stage(p).from, p).to.equal("runtime");
    expect(stage("runtime").lines).to.include.members(["WORKDIR /app", "COPY --from=build /image/ ./"]);
  });

  it("keeps the sources in the build context and leaves out what a build makes again", () => {
    const patterns = ignorePatterns(readFileSync(join(repoRoot, ".dockerignore"), "utf8"));
    const files = spawnSync("git", ["ls-files", "-z"], { cwd: repoRoot, encoding: "utf8" });
    expect(files.status, files.stderr).to.equal(0);
    const tracked = files.stdout.split("\0").filter((f) => f !== "");
    for (const w of workspaces) {
      const kept = tracked.filter((f) => f.startsWith(`${w}/`) && ignored(patterns, f));
      expect(kept, `${w}: sources left out of the build context`).to.deep.equal([]);
      // A stale dist or tsbuildinfo would make tsc -b skip the workspace; node_modules come from npm ci.
      for (const made of ["dist/main.js", "tsconfig.tsbuildinfo", "dist/tsconfig.tsbuildinfo", "node_modules/x/index.js"]) {
        expect(ignored(patterns, `${w}/${made}`), `${w}/${made} left out`).to.equal(true);
      }
    }
    for (const f of ["package.json", "package-lock.json", "tsconfig.base.json", "scripts/docker-image.js"]) {
      expect(ignored(patterns, f), f).to.equal(false);
    }
    expect(ignored(patterns, "node_modules/x/index.js")).to.equal(true);
  });

  it("ignorePatterns matches as Docker does: ** at any depth, * within one name, a folder with all below it", () => {
    const p = ignorePatterns("# c\n**/dist\n*.log\n.git\n");
    expect(["dist", "a/dist", "a/b/dist/x.js", "x.log", ".git/HEAD"].filter((f) => ignored(p, f))).to.have.length(5);
    expect(["distx", "a/x.log", "a/.git", "src/a.ts"].filter((f) => ignored(p, f))).to.deep.equal([]);
  });

  it("stagesOf splits global instructions and stages and joins continuation lines", () => {
    const s = stagesOf("ARG P\n# c\nFROM a AS build\nRUN x \\\n && y\nFROM $P\nCOPY --from=build /app/x x\n");
    expect(s).to.deep.equal({
      global: ["ARG P"],
      stages: [
        { name: "build", from: "a", lines: ["RUN x   && y"] },
        { name: undefined, from: "$P", lines: ["COPY --from=build /app/x x"] },
      ],
    });
  });

  for (const program of programs) {
    describe(program, () => {
      const deps = [...dependencies(program)];
      const chain = chainOf(program);

      it("compiles every workspace it depends on: tsc -b PROGRAM follows tsconfig references that cover them", () => {
        expect([...referenced(program)]).to.include.members(deps);
        const build = runs(stage("build"));
        const steps = [
          `node_modules/.bin/tsc -b "${PROGRAM_REF}"`,
          "npm ci --omit=dev",
          `node scripts/docker-image.js "${PROGRAM_REF}" /image`,
        ];
        const at = steps.map((s) => build.indexOf(s));
        expect(at, `build stage runs, in this order: ${steps.join(", ")}`).to.deep.equal([...at].sort((a, b) => a - b));
        expect(Math.min(...at)).to.be.at.least(0);
      });

      it("ships every workspace it depends on, compiled, without test files, and nothing else (docker-image.js, run)", () => {
        const dir = mkdtempSync(join(tmpdir(), "nsm-dockerfile-image-"));
        try {
          const tree = join(dir, "app");
          fakeBuildTree(tree);
          const image = join(dir, "image");
          const r = spawnSync(process.execPath, [join(repoRoot, "scripts", "docker-image.js"), program, image], {
            cwd: tree,
            encoding: "utf8",
          });
          expect(r.status, r.stderr).to.equal(0);
          expect(readdirSync(image).sort()).to.deep.equal(["node_modules", "package.json", ...deps].sort());
          for (const w of deps) {
            expect(readdirSync(join(image, w, "dist")), `${w}/dist`).to.deep.equal(["main.js"]);
            expect(existsSync(join(image, w, "package.json")), `${w}/package.json`).to.equal(true);
            expect(existsSync(join(image, w, "node_modules", "nested-dep", "index.js")), `${w}/node_modules`).to.equal(true);
            expect(existsSync(join(image, w, "bin")), `${w}/bin`).to.equal(existsSync(join(repoRoot, w, "bin")));
            // The link npm made still leads to the workspace, now inside the image.
            expect(realpathSync(join(image, "node_modules", pkgOf(w).name))).to.equal(realpathSync(join(image, w)));
          }
          expect(existsSync(join(image, "node_modules", "some-dep", "index.js"))).to.equal(true);
          for (const w of workspaces.filter((x) => !deps.includes(x))) {
            expect(spawnSync("test", ["-L", join(image, "node_modules", pkgOf(w).name)]).status, `link to ${w}`).to.not.equal(0);
          }
          const entry = JSON.parse(last(chain, "ENTRYPOINT") ?? "null") as string[];
          expect(existsSync(join(image, entry[1] as string)), "entrypoint in the image").to.equal(true);

          // A dependency tsc -b did not reach (a missing tsconfig reference) fails the build.
          rmSync(join(tree, deps.at(-1) as string, "dist"), { recursive: true });
          const broken = spawnSync(process.execPath, [join(repoRoot, "scripts", "docker-image.js"), program, join(dir, "image2")], {
            cwd: tree,
            encoding: "utf8",
          });
          expect(broken.status).to.equal(1);
          expect(broken.stderr).to.match(new RegExp(`${deps.at(-1)} is not compiled`));
        } finally {
          rmSync(dir, { recursive: true, force: true });
        }
      });

      it("starts the program's bin, runs as node unless it needs root, exposes its default tcp ports", async () => {
        expect(JSON.parse(last(chain, "ENTRYPOINT") ?? "null")).to.deep.equal(["node", `${program}/bin/${program}.js`]);
        expect(existsSync(join(repoRoot, program, "bin", `${program}.js`))).to.equal(true);
        const user = last(chain, "USER");
        if (program === "cmd-forwarder") {
          expect(user ?? "root", "the forwarder runs as root for the kernel data plane").to.equal("root");
          expect(text)
            .to.match(/NET_ADMIN/)
            .and.to.match(/hostPID/);
          expect(runs(stage(program))).to.match(/apt-get install -y --no-install-recommends iproute2 nftables/);
        } else {
          expect(user).to.equal("node");
        }
        const { config } = (await import(pathToFileURL(join(repoRoot, program, "dist", "config.js")).href)) as {
          config: { vars: Record<string, { name: string; default?: string | null }> };
        };
        const listenOnVar = Object.values(config.vars).find((v) => v.name === "NSM_LISTEN_ON");
        const listenOn = (listenOnVar?.default ?? "").split(",").filter((u) => u !== "");
        const ports = listenOn.flatMap((u) => /^tcp:\/\/[^/]*:(\d+)$/.exec(u)?.[1] ?? []);
        const exposed = chain.flatMap((s) => s.lines.filter((l) => l.startsWith("EXPOSE ")).flatMap((l) => l.split(/\s+/).slice(1)));
        expect(exposed.sort(), "EXPOSE = the tcp ports of NSM_LISTEN_ON's default").to.deep.equal(ports.sort());
        // A unix socket the program listens on by default sits in a folder the image makes for its user.
        for (const u of listenOn.filter((x) => x.startsWith("unix://"))) {
          const folder = dirname(u.slice("unix://".length));
          expect(runs(stage(program))).to.include(`mkdir -p ${folder} && chown node:node ${folder}`);
        }
      });
    });
  }
});
