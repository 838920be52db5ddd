/**
 * The layering rules of .dependency-cruiser.cjs (drawn in docs/architecture.md): the repository passes them, and
 * every rule fails on a violation planted in a scratch tree shaped like the repository.
 */
import { execFileSync } from "node:child_process";
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { expect } from "chai";

const repo = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const depcruise = join(repo, "node_modules", ".bin", "depcruise");
const config = join(repo, ".dependency-cruiser.cjs");

/** Runs dependency-cruiser in `cwd` on `paths`; returns its exit code and report. */
function cruise(cwd: string, paths: string[]): { code: number; out: string } {
  try {
    const out = execFileSync(depcruise, ["--config", config, "--output-type", "err", ...paths], { cwd, stdio: "pipe" });
    return { code: 0, out: String(out) };
  } catch (err) {
    const e = err as { status?: number; stdout?: Buffer; stderr?: Buffer };
    return { code: e.status ?? 1, out: `${String(e.stdout ?? "")}${String(e.stderr ?? "")}` };
  }
}

describe("layering (dependency-cruiser)", function () {
  this.timeout(60_000);

  it("the repository's sources pass every rule", () => {
    const dirs = ["api", "base", "statedb", "resources", "services", "sdk", "sdk-linux", "testing", "cmd-registry", "cmd-nsmgr"];
    const all = [...dirs, "cmd-forwarder", "cmd-endpoint", "cmd-nsc", "cmd-traffic-controller", "integration-linux", "examples", "bench"];
    const r = cruise(
      repo,
      all.map((d) => `${d}/src`),
    );
    expect(r.code, r.out).to.equal(0);
    expect(r.out).to.match(/no dependency violations found \((\d{3,}) modules/);
  });

  it("sees imports between workspace packages (they resolve to the packages' dist), so the rules cover them", () => {
    const out = execFileSync(depcruise, ["--config", config, "--output-type", "json", "cmd-nsmgr/src/run.ts"], {
      cwd: repo,
      stdio: "pipe",
    });
    const modules = (JSON.parse(String(out)) as { modules: Array<{ source: string; dependencies: Array<{ resolved: string }> }> }).modules;
    const run = modules.find((m) => m.source === "cmd-nsmgr/src/run.ts");
    const targets = run?.dependencies.map((d) => d.resolved) ?? [];
    expect(
      targets.some((t) => t.startsWith("sdk/dist/")),
      targets.join(", "),
    ).to.equal(true);
    expect(
      targets.some((t) => t.startsWith("base/dist/")),
      targets.join(", "),
    ).to.equal(true);
  });

  describe("each rule bites on a planted violation", () => {
    let tree = "";
    const plant = (files: Record<string, string>): void => {
      for (const [path, text] of Object.entries(files)) {
        mkdirSync(dirname(join(tree, path)), { recursive: true });
        writeFileSync(join(tree, path), text);
      }
    };
    beforeEach(() => {
      tree = mkdtempSync(join(tmpdir(), "nsm-layering-"));
      copyFileSync(join(repo, "tsconfig.base.json"), join(tree, "tsconfig.base.json"));
    });
    afterEach(() => rmSync(tree, { recursive: true, force: true }));

    const cases: Array<[rule: string, files: Record<string, string>]> = [
      [
        "no-cycles",
        {
          "sdk/src/a.ts": 'import { b } from "./b.js";\nexport const a = b;\n',
          "sdk/src/b.ts": 'import { a } from "./a.js";\nexport const b = () => a;\n',
        },
      ],
      [
        "registry-not-networkservice",
        { "sdk/src/registry/r.ts": 'import "../networkservice/n.js";\n', "sdk/src/networkservice/n.ts": "export {};\n" },
      ],
      [
        "base-imports-no-floor-above",
        { "base/src/x.ts": 'import "../../sdk/src/networkservice/n.js";\n', "sdk/src/networkservice/n.ts": "export {};\n" },
      ],
      ["statedb-on-base-only", { "statedb/src/s.ts": 'import "../../resources/src/r.js";\n', "resources/src/r.ts": "export {};\n" }],
      [
        "product-not-test-support",
        { "sdk/src/networkservice/e.ts": 'import "../../../testing/src/t.js";\n', "testing/src/t.ts": "export {};\n" },
      ],
      [
        "sdk-not-sdk-linux",
        { "sdk/src/networkservice/g.ts": 'import "../../../sdk-linux/src/l.js";\n', "sdk-linux/src/l.ts": "export {};\n" },
      ],
      ["libraries-not-programs", { "sdk-linux/src/l.ts": 'import "../../cmd-nsc/src/p.js";\n', "cmd-nsc/src/p.ts": "export {};\n" }],
      [
        "services-not-networkservice",
        { "services/src/m.ts": 'import "../../sdk/src/networkservice/n.js";\n', "sdk/src/networkservice/n.ts": "export {};\n" },
      ],
    ];
    for (const [rule, files] of cases) {
      it(`${rule}`, () => {
        plant(files);
        const r = cruise(tree, ["."]);
        expect(r.code, r.out).to.not.equal(0);
        expect(r.out).to.contain(`error ${rule}:`);
      });
    }

    it("a test file may import test support; the same import in product code may not", () => {
      plant({ "sdk/src/networkservice/n.test.ts": 'import "../../../testing/src/t.js";\n', "testing/src/t.ts": "export {};\n" });
      expect(cruise(tree, ["."]).code).to.equal(0);
      plant({ "sdk/src/networkservice/n.ts": 'import "../../../testing/src/t.js";\n' });
      expect(cruise(tree, ["."]).out).to.contain("error product-not-test-support:");
    });
  });

  it("hand-written modules name what they export: no `export *` outside the api facades over generated code", () => {
    const files = String(execFileSync("git", ["ls-files", "*.ts"], { cwd: repo }))
      .split("\n")
      .filter(
        (f) =>
          f !== "" &&
          !f.startsWith("api/gen/") &&
          !/^api\/src\/(networkservice|registry|ipam|resources|intents|services|health|spiffe)\.ts$/.test(f),
      );
    expect(files.length).to.be.greaterThan(100);
    const wildcard = files.filter((f) => /^export \* from /m.test(readFileSync(join(repo, f), "utf8")));
    expect(wildcard).to.deep.equal([]);
  });
});
