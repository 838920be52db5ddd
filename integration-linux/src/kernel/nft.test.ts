import { Code, StatusError } from "@nsm-ts/base/status";
import { type Netns, nft } from "@nsm-ts/sdk-linux";
import { expect } from "chai";
import { KernelFixture, skipUnlessKernel } from "./fixture.js";

/** Probed once: why nft cannot run here, or undefined. */
async function nftUnavailable(): Promise<string | undefined> {
  const { runCommand } = await import("@nsm-ts/sdk-linux");
  const r = await runCommand(["nft", "--version"]).catch(() => undefined);
  return r?.code === 0 ? undefined : "nft is not installed (apt-get install nftables)";
}

const table = (rules: string[], name = "nsmts_t"): nft.NftTable => ({
  family: "inet",
  name,
  sets: [{ name: "targets", keyType: "ipv4_addr", elements: ["203.0.113.7"] }],
  chains: [
    { name: "out", hook: { type: "filter", hook: "output", priority: 0 }, rules: ["ip daddr @targets jump count_it"] },
    { name: "count_it", rules },
  ],
});

describe("kernel: nftables tables of ours", function () {
  this.timeout(20000);
  const fx = new KernelFixture();
  let ns: Netns;
  const exec = nft.createNftExecutor();

  before(async function () {
    await skipUnlessKernel(this);
    const why = await nftUnavailable();
    if (why !== undefined) {
      process.stderr.write(`      skipping nft tests: ${why}\n`);
      this.skip();
    }
  });
  beforeEach(async () => {
    ns = await fx.netns("nft");
  });
  afterEach(async () => {
    await fx.cleanup();
  });

  it("applies, replaces atomically, lists and deletes a table inside the namespace", async () => {
    await exec.apply(ns, table(["counter accept"]));
    expect(await exec.list(ns)).to.deep.equal([{ family: "inet", name: "nsmts_t" }]);
    const first = await exec.query(ns, ["list", "table", "inet", "nsmts_t"], "list");
    expect(first).to.contain("counter packets 0 bytes 0 accept").and.contain("203.0.113.7");

    // A broken replacement changes nothing: the old table stays whole.
    const err = await exec.apply(ns, table(["counter accept", "this is not nft"])).catch((e: unknown) => e);
    expect(err).to.be.instanceOf(StatusError);
    expect((err as StatusError).code).to.equal(Code.InvalidArgument);
    expect(await exec.query(ns, ["list", "table", "inet", "nsmts_t"], "list")).to.equal(first);

    await exec.apply(ns, table(["counter drop"]));
    const second = await exec.query(ns, ["list", "table", "inet", "nsmts_t"], "list");
    expect(second).to.contain("counter packets 0 bytes 0 drop").and.not.contain("accept\n\t}\n\n\tchain count_it");

    await exec.delete(ns, { family: "inet", name: "nsmts_t" });
    await exec.delete(ns, { family: "inet", name: "nsmts_t" }); // idempotent
    expect(await exec.list(ns)).to.deep.equal([]);
  });

  it("finds and removes leftovers of ours only, leaving other tables alone", async () => {
    await exec.apply(ns, table(["accept"], "nsmts_a"));
    await exec.apply(ns, table(["accept"], "nsmts_b"));
    await exec.run(ns, "add table ip theirs\n", "add a foreign table");
    const found = await nft.findNftLeftovers({ namespaces: [ns.url] });
    expect(found.map((t) => t.name).sort()).to.deep.equal(["nsmts_a", "nsmts_b"]);
    const removed = await nft.removeNftLeftovers((_ns, t) => t.name === "nsmts_b", { namespaces: [ns.url] });
    expect(removed.map((t) => t.name)).to.deep.equal(["nsmts_a"]);
    expect((await exec.list(ns, "")).map((t) => t.name).sort()).to.deep.equal(["nsmts_b", "theirs"]);
    await nft.removeNftLeftovers(undefined, { namespaces: [ns.url] });
    expect(await nft.findNftLeftovers({ namespaces: [ns.url] })).to.deep.equal([]);
  });

  it("says NotFound for a namespace that is gone", async () => {
    await fx.cleanup();
    const err = await exec.list(ns).catch((e: unknown) => e);
    expect((err as StatusError).code).to.equal(Code.NotFound);
  });
});
