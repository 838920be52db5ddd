/**
 * What the published packages carry: `npm pack` of each holds its compiled code and no tests, test support or
 * build leftovers, and none of them depends on test tooling (chai, mocha, @nsm-ts/testing).
 */
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { expect } from "chai";

const repo = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const PUBLISHED = ["api", "base", "statedb", "resources", "sdk", "sdk-linux"];

describe("published packages", function () {
  this.timeout(60_000);

  for (const ws of PUBLISHED) {
    it(`${ws}: npm pack carries compiled code only, no tests or test support`, () => {
      const pkg = JSON.parse(readFileSync(join(repo, ws, "package.json"), "utf8")) as {
        name: string;
        private?: boolean;
        dependencies?: Record<string, string>;
        peerDependencies?: Record<string, string>;
      };
      expect(pkg.private ?? false, "published packages are not private").to.equal(false);
      const deps = Object.keys({ ...pkg.dependencies, ...pkg.peerDependencies });
      expect(deps.filter((d) => ["chai", "mocha", "@nsm-ts/testing"].includes(d))).to.deep.equal([]);
      const out = execFileSync("npm", ["pack", "--dry-run", "--json", "--ignore-scripts"], { cwd: join(repo, ws), stdio: "pipe" });
      const files = (JSON.parse(String(out)) as Array<{ files: Array<{ path: string }> }>)[0]?.files.map((f) => f.path) ?? [];
      expect(files.filter((f) => f.startsWith("dist/") && f.endsWith(".js")).length, "compiled modules").to.be.greaterThan(0);
      expect(files.filter((f) => /\.test\.|\.fixture\.|harness|(^|\/)test-[^/]*$|tsbuildinfo/.test(f))).to.deep.equal([]);
    });
  }
});
