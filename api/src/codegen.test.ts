import { expect } from "chai";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

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
});
