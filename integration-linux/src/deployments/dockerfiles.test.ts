/**
 * The programs' Dockerfiles against the workspace they build from. No Docker engine runs in CI, so instead of
 * building the images this checks what drifts when the code moves: every workspace a program references
 * (its tsconfig `references`, transitively) is installed, compiled and copied into the runtime image, the
 * entrypoint is the program's bin, and the images run as `node` except the forwarder, which says why not.
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { expect } from "chai";
import { PROGRAMS, repoRoot } from "../programs/harness.js";

interface Stage {
  name: string;
  lines: string[];
}

/** The Dockerfile's instructions (continuation lines joined, comments dropped), grouped by FROM stage. */
export function stagesOf(dockerfile: string): Stage[] {
  const stages: Stage[] = [];
  for (const raw of dockerfile.replace(/\\\n/g, " ").split("\n")) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) continue;
    const from = /^FROM\s+\S+(?:\s+AS\s+(\S+))?/i.exec(line);
    if (from) stages.push({ name: from[1] ?? "runtime", lines: [] });
    else stages.at(-1)?.lines.push(line);
  }
  return stages;
}

/** The workspace folders `pkg` builds on, itself included, from the tsconfig project references. */
function referenced(pkg: string, seen = new Set<string>()): Set<string> {
  if (seen.has(pkg)) return seen;
  seen.add(pkg);
  const tsconfig = JSON.parse(readFileSync(join(repoRoot, pkg, "tsconfig.json"), "utf8")) as { references?: Array<{ path: string }> };
  for (const r of tsconfig.references ?? []) referenced(r.path.replace(/^\.\.\//, ""), seen);
  return seen;
}

/** The sources of the COPY instructions of a stage (`--from` ones with the stage prefixed). */
function copies(stage: Stage): string[] {
  return stage.lines.flatMap((l) => {
    const m = /^COPY\s+(?:--from=(\S+)\s+)?(.+)$/i.exec(l);
    if (!m?.[2]) return [];
    const srcs = m[2].trim().split(/\s+/).slice(0, -1);
    return srcs.map((s) => (m[1] ? `${m[1]}:${s}` : s));
  });
}

describe("deployments: Dockerfiles", () => {
  for (const program of PROGRAMS) {
    describe(program, () => {
      const text = readFileSync(join(repoRoot, program, "Dockerfile"), "utf8");
      const stages = stagesOf(text);
      const by = (name: string): Stage => {
        const s = stages.find((x) => x.name === name);
        if (!s) throw new Error(`${program}/Dockerfile has no stage ${name}`);
        return s;
      };
      const deps = [...referenced(program)].sort();

      it("installs, compiles and ships every workspace the program references", () => {
        expect(stages.map((s) => s.name)).to.deep.equal(["build", "deps", "runtime"]);
        for (const stage of [by("build"), by("deps")]) {
          for (const w of deps) expect(copies(stage), `${stage.name} stage: ${w}/package.json`).to.include(`${w}/package.json`);
          expect(copies(stage)).to.include.members(["package.json", "package-lock.json"]);
          expect(
            stage.lines.some((l) => /^RUN npm ci\b/.test(l)),
            `${stage.name} stage runs npm ci`,
          ).to.equal(true);
        }
        expect(
          by("deps").lines.some((l) => /npm ci .*--omit=dev/.test(l)),
          "deps stage without dev dependencies",
        ).to.equal(true);
        for (const w of deps) {
          expect(copies(by("build")), `build stage: ${w} sources`).to.include.members([`${w}/tsconfig.json`, `${w}/src`]);
          expect(copies(by("runtime")), `runtime stage: ${w}/dist`).to.include(`build:/app/${w}/dist`);
        }
        expect(copies(by("build"))).to.include("api/gen");
        expect(by("build").lines.some((l) => l.startsWith(`RUN node_modules/.bin/tsc -b ${program}`))).to.equal(true);
        expect(copies(by("runtime"))).to.include.members(["deps:/app", `build:/app/${program}/bin`]);
        // Every COPY from the build context names something that exists.
        for (const stage of stages) {
          for (const src of copies(stage).filter((s) => !s.includes(":")))
            expect(existsSync(join(repoRoot, src)), `${src} exists`).to.equal(true);
        }
      });

      it("starts the program's bin and runs as node unless it needs root", () => {
        const entry = by("runtime").lines.find((l) => l.startsWith("ENTRYPOINT"));
        expect(JSON.parse(entry?.replace(/^ENTRYPOINT\s+/, "") ?? "null")).to.deep.equal(["node", `${program}/bin/${program}.js`]);
        expect(existsSync(join(repoRoot, program, "bin", `${program}.js`))).to.equal(true);
        const user = by("runtime").lines.find((l) => l.startsWith("USER"));
        if (program === "cmd-forwarder") {
          expect(user, "the forwarder runs as root for the kernel data plane").to.equal(undefined);
          expect(text)
            .to.match(/NET_ADMIN/)
            .and.to.match(/hostPID/);
        } else {
          expect(user).to.equal("USER node");
        }
      });
    });
  }

  it("stagesOf groups instructions by stage and joins continuation lines", () => {
    const s = stagesOf("# c\nFROM a AS build\nRUN x \\\n && y\nFROM b\nCOPY --from=build /app/x x\n");
    expect(s).to.deep.equal([
      { name: "build", lines: ["RUN x   && y"] },
      { name: "runtime", lines: ["COPY --from=build /app/x x"] },
    ]);
    expect(copies(s[1] as Stage)).to.deep.equal(["build:/app/x"]);
  });
});
