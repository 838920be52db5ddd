import { mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect } from "chai";
import { type ClientState, readStates, removeState, stateFilePath, writeState } from "./state.js";

describe("cmd-nsc state files", () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "nsc-state-"));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  const state = (name: string, pid: number): ClientState => ({ name, pid, updatedAt: "2026-01-01T00:00:00.000Z", connections: [] });

  it("writes atomically (no temp file left), reads back sorted by name, and removes on shutdown", () => {
    writeState(join(dir, "sub"), state("nsc-b", process.pid));
    writeState(join(dir, "sub"), state("nsc-a", process.pid));
    expect(readdirSync(join(dir, "sub")).sort()).to.deep.equal(["nsc-a.json", "nsc-b.json"]);
    expect(readStates(join(dir, "sub")).map((s) => s.name)).to.deep.equal(["nsc-a", "nsc-b"]);
    removeState(join(dir, "sub"), "nsc-a");
    expect(readStates(join(dir, "sub")).map((s) => s.name)).to.deep.equal(["nsc-b"]);
  });

  it("skips files of processes that are gone and files that are not client states; a missing directory is empty", () => {
    writeState(dir, state("alive", 10));
    writeState(dir, state("dead", 11));
    writeFileSync(join(dir, "junk.json"), "{not json");
    writeFileSync(join(dir, "other.json"), '{"x":1}');
    expect(readStates(dir, (pid) => pid === 10).map((s) => s.name)).to.deep.equal(["alive"]);
    expect(readStates(join(dir, "missing"))).to.deep.equal([]);
  });

  it("keeps a name with path characters inside the directory", () => {
    expect(stateFilePath("/run/nsc", "../x/y")).to.equal("/run/nsc/.._x_y.json");
  });
});
