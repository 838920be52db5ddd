import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { expect } from "chai";

// api/dist/src/codegen.test.js → repo root is three levels up.
const root = resolve(fileURLToPath(new URL("../../..", import.meta.url)));

function files(dir: string): string[] {
  return readdirSync(dir, { recursive: true })
    .map(String)
    .filter((f) => f.endsWith(".ts"))
    .sort();
}

describe("api code generation", function () {
  this.timeout(120_000);
  let out = "";
  afterEach(() => {
    if (out) rmSync(out, { recursive: true, force: true });
  });

  it("regenerating the protobuf-es code gives exactly what is committed in api/gen", function () {
    const buf = join(root, "node_modules", ".bin", "buf");
    if (!existsSync(buf)) this.skip();
    out = mkdtempSync(join(tmpdir(), "nsmts-gen-"));
    // buf finds the protoc-gen-es plugin on PATH.
    const env = { ...process.env, PATH: `${join(root, "node_modules", ".bin")}:${process.env.PATH ?? ""}` };
    execFileSync(buf, ["generate", "--output", out], { cwd: root, stdio: "pipe", env });
    const fresh = join(out, "api", "gen");
    const committed = join(root, "api", "gen");
    expect(files(fresh)).to.deep.equal(files(committed));
    for (const f of files(committed)) {
      expect(readFileSync(join(fresh, f), "utf8"), `api/gen/${f} differs from a fresh generation`).to.equal(
        readFileSync(join(committed, f), "utf8"),
      );
    }
  });

  it("buf lint passes on every proto", function () {
    const buf = join(root, "node_modules", ".bin", "buf");
    if (!existsSync(buf)) this.skip();
    execFileSync(buf, ["lint"], { cwd: root, stdio: "pipe" });
  });

  it("the repository's TypeScript and JavaScript pass biome ci (lint and format, warnings as errors)", () => {
    const biome = join(root, "node_modules", ".bin", "biome");
    try {
      execFileSync(biome, ["ci", "--error-on-warnings", "--colors=off", "."], { cwd: root, stdio: "pipe" });
    } catch (err) {
      // Show what biome found, not only its exit code; `npm run format` fixes the formatting part.
      const e = err as { stdout?: Buffer; stderr?: Buffer };
      expect.fail(`biome ci failed:\n${String(e.stdout ?? "")}${String(e.stderr ?? "")}`);
    }
  });
});
