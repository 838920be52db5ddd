import { Code, StatusError } from "@nsm-ts/base/status";
import { expect } from "chai";
import type { CommandRunner } from "../exec.js";
import type { Netns } from "../netns.js";
import { createNftExecutor, parseTables } from "./executor.js";
import { type NftTable, renderDelete, renderTable } from "./table.js";

function code(fn: () => unknown): number | undefined {
  try {
    fn();
  } catch (err) {
    return err instanceof StatusError ? err.code : -1;
  }
  return undefined;
}

const table: NftTable = {
  family: "inet",
  name: "nsmts_demo",
  sets: [
    { name: "allowed", keyType: "ipv4_addr", flags: ["interval"], elements: ["198.51.100.0/24"] },
    { name: "ports", keyType: "inet_service", valueType: "verdict", elements: ["80 : accept"] },
  ],
  chains: [
    { name: "out", hook: { type: "nat", hook: "output", priority: -100 }, rules: ["ip daddr 203.0.113.1 tcp dport 80 jump svc"] },
    { name: "svc", rules: ["meta l4proto tcp dnat ip to 198.51.100.1 . 8080"] },
  ],
};

describe("nft: renderTable", () => {
  it("replaces the table in one transaction: add, delete, declare every chain, then the rules", () => {
    const s = renderTable(table);
    const lines = s.split("\n");
    expect(lines.slice(0, 3)).to.deep.equal(["add table inet nsmts_demo", "delete table inet nsmts_demo", "table inet nsmts_demo {"]);
    expect(s).to.contain("type nat hook output priority -100; policy accept;");
    expect(s).to.contain("flags interval");
    expect(s).to.contain("type inet_service : verdict");
    // The jump target is declared before the rule that jumps to it.
    expect(s.indexOf("chain svc {")).to.be.lessThan(s.indexOf("jump svc"));
    expect(s.endsWith("}\n")).to.equal(true);
  });

  it("rejects names outside our prefix, bad identifiers, duplicates and multi-line text", () => {
    expect(code(() => renderTable({ ...table, name: "filter" }))).to.equal(Code.InvalidArgument);
    expect(code(() => renderTable({ ...table, name: "nsmts_a-b" }))).to.equal(Code.InvalidArgument);
    expect(code(() => renderTable({ ...table, chains: [table.chains[1], table.chains[1]] as NftTable["chains"] }))).to.equal(
      Code.InvalidArgument,
    );
    expect(code(() => renderTable({ ...table, chains: [{ name: "x", rules: ["accept\ndelete table ip filter"] }] }))).to.equal(
      Code.InvalidArgument,
    );
    expect(code(() => renderTable({ ...table, family: "bogus" as "ip" }))).to.equal(Code.InvalidArgument);
  });

  it("deletes idempotently (add before delete)", () => {
    expect(renderDelete({ family: "ip", name: "nsmts_x" })).to.equal("add table ip nsmts_x\ndelete table ip nsmts_x\n");
  });
});

describe("nft: executor", () => {
  const ns = {
    execArgv: (cmd: readonly string[]) => ["nsenter", "--net=/run/netns/t", ...cmd],
    toString: () => "netns t",
  } as unknown as Netns;

  it("sends the rendered table to one `nft -f -` inside the namespace", async () => {
    const calls: Array<{ argv: readonly string[]; stdin?: string }> = [];
    const run: CommandRunner = async (argv, o) => {
      calls.push({ argv, stdin: o?.stdin });
      return { code: 0, stdout: "", stderr: "" };
    };
    await createNftExecutor({ run }).apply(ns, table);
    expect(calls).to.have.length(1);
    expect(calls[0]?.argv).to.deep.equal(["nsenter", "--net=/run/netns/t", "nft", "-f", "-"]);
    expect(calls[0]?.stdin).to.equal(renderTable(table));
  });

  it("turns nft errors into status errors naming the table and the first error line", async () => {
    const run: CommandRunner = async () => ({
      code: 1,
      stdout: "",
      stderr: "/dev/stdin:9:3-9: Error: syntax error, unexpected junk\n  junk\n  ^^^^\n",
    });
    const err = await createNftExecutor({ run })
      .apply(ns, table)
      .catch((e: unknown) => e);
    expect(err).to.be.instanceOf(StatusError);
    expect((err as StatusError).code).to.equal(Code.InvalidArgument);
    expect((err as StatusError).message)
      .to.contain("apply table inet nsmts_demo in netns t")
      .and.contain("syntax error");
    const perm: CommandRunner = async () => ({ code: 1, stdout: "", stderr: "Error: Could not process rule: Operation not permitted\n" });
    const e2 = await createNftExecutor({ run: perm })
      .delete(ns, table)
      .catch((e: unknown) => e);
    expect((e2 as StatusError).code).to.equal(Code.PermissionDenied);
    const missing: CommandRunner = async () => ({
      code: 127,
      stdout: "",
      stderr: "nsenter: failed to execute nft: No such file or directory\n",
    });
    const e3 = await createNftExecutor({ run: missing })
      .list(ns)
      .catch((e: unknown) => e);
    expect((e3 as StatusError).code).to.equal(Code.FailedPrecondition);
    expect((e3 as StatusError).message).to.contain("install nftables");
  });

  it("lists only our tables from `nft -j list tables`", async () => {
    const out = JSON.stringify({
      nftables: [
        { metainfo: { version: "1.0.6" } },
        { table: { family: "inet", name: "nsmts_a", handle: 1 } },
        { table: { family: "ip", name: "filter", handle: 2 } },
      ],
    });
    expect(parseTables(out)).to.deep.equal([
      { family: "inet", name: "nsmts_a" },
      { family: "ip", name: "filter" },
    ]);
    const run: CommandRunner = async () => ({ code: 0, stdout: out, stderr: "" });
    expect(await createNftExecutor({ run }).list(ns)).to.deep.equal([{ family: "inet", name: "nsmts_a" }]);
  });
});
