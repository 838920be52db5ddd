import { mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { expect } from "chai";
import { BUNDLE_INPUTS, bundleIsCurrent, launch } from "./index.js";

describe("launch: the bundle while it is current, the compiled modules otherwise", () => {
  let dir: string;
  let n = 0;
  /** A program folder: bin/p.js, dist/main.js and dist/bundle/main.js that each record which one ran. */
  const program = (): { bin: string; bundle: URL; input: string; ran: () => string | undefined } => {
    const key = `__launchTest${n++}`;
    const p = join(dir, `p${n}`);
    mkdirSync(join(p, "bin"), { recursive: true });
    mkdirSync(join(p, "dist", "bundle"), { recursive: true });
    writeFileSync(join(p, "dist", "main.js"), `globalThis.${key} = "modules";\n`);
    const input = join(p, "dist", "part.js");
    writeFileSync(input, "export {};\n");
    writeFileSync(join(p, "dist", "bundle", "main.js"), `globalThis.${key} = "bundle";\n`);
    writeFileSync(join(p, "dist", "bundle", BUNDLE_INPUTS), JSON.stringify(["../part.js", "../main.js"]));
    // Inputs older than the bundle, as after `npm run build`.
    const past = new Date(Date.now() - 60_000);
    utimesSync(input, past, past);
    utimesSync(join(p, "dist", "main.js"), past, past);
    return {
      bin: pathToFileURL(join(p, "bin", "p.js")).href,
      bundle: pathToFileURL(join(p, "dist", "bundle", "main.js")),
      input,
      ran: () => (globalThis as Record<string, unknown>)[key] as string | undefined,
    };
  };

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "nsm-launch-"));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it("runs the bundle when no input changed since it was built", async () => {
    const p = program();
    expect(bundleIsCurrent(p.bundle)).to.equal(true);
    await launch(p.bin);
    expect(p.ran()).to.equal("bundle");
  });

  it("runs the compiled modules when an input is newer than the bundle (tsc -b without bundling)", async () => {
    const p = program();
    const later = new Date(Date.now() + 60_000);
    utimesSync(p.input, later, later);
    expect(bundleIsCurrent(p.bundle)).to.equal(false);
    await launch(p.bin);
    expect(p.ran()).to.equal("modules");
  });

  it("runs the compiled modules when the bundle, its input list or an input is missing", async () => {
    const noList = program();
    rmSync(new URL(BUNDLE_INPUTS, noList.bundle));
    expect(bundleIsCurrent(noList.bundle)).to.equal(false);
    const noInput = program();
    rmSync(noInput.input);
    expect(bundleIsCurrent(noInput.bundle)).to.equal(false);
    const noBundle = program();
    rmSync(noBundle.bundle);
    await launch(noBundle.bin);
    expect(noBundle.ran()).to.equal("modules");
  });
});
