/**
 * docs/write-an-endpoint.md shows the example files verbatim: every code block preceded by
 * `<!-- file: PATH -->` must equal that file, so the guide cannot drift from the tested code.
 */
import { readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { expect } from "chai";

const repo = resolve(dirname(fileURLToPath(import.meta.url)), "../..");

/** The `<!-- file: PATH -->` blocks of a markdown text: path and the fenced code right after the marker. */
export function includedBlocks(markdown: string): { path: string; code: string }[] {
  const out: { path: string; code: string }[] = [];
  const re = /<!-- file: (\S+) -->\n```[a-z]*\n([\s\S]*?)```\n/g;
  for (const m of markdown.matchAll(re)) out.push({ path: m[1] ?? "", code: m[2] ?? "" });
  return out;
}

describe("docs/write-an-endpoint.md", () => {
  const guide = readFileSync(join(repo, "docs", "write-an-endpoint.md"), "utf8");

  it("shows dns-endpoint.ts and serve.ts exactly as they are", () => {
    const blocks = includedBlocks(guide);
    expect(blocks.map((b) => b.path)).to.deep.equal(["examples/src/dns-endpoint.ts", "examples/src/serve.ts"]);
    for (const b of blocks) expect(b.code, b.path).to.equal(readFileSync(join(repo, b.path), "utf8"));
  });

  it("keeps the example endpoint under 40 lines", () => {
    const lines = readFileSync(join(repo, "examples", "src", "dns-endpoint.ts"), "utf8")
      .trimEnd()
      .split("\n");
    expect(lines.length).to.be.below(40);
  });

  it("notices a drifted block", () => {
    const drifted = guide.replace("searchDomains: dns.searchDomains", "searchDomains: []");
    const block = includedBlocks(drifted).find((b) => b.path === "examples/src/dns-endpoint.ts");
    expect(block?.code).to.not.equal(readFileSync(join(repo, "examples", "src", "dns-endpoint.ts"), "utf8"));
  });
});
