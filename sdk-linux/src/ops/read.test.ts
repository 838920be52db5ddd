import { Code, StatusError } from "@nsm-ts/base/status";
import { expect } from "chai";
import type { CommandResult, CommandRunner } from "../exec.js";
import { createIpExecutor, type IpExecutor } from "../executor.js";
import { Netns, parseNetnsUrl } from "../netns.js";
import { listOwned } from "./owned.js";
import { getLink, listLinks, parseLink, parseRoute } from "./read.js";

/** An executor whose `ip` always answers `reply`. */
function answering(reply: Partial<CommandResult>): IpExecutor {
  const run: CommandRunner = async () => ({ code: 0, stdout: "", stderr: "", ...reply });
  return createIpExecutor({ run });
}

const a = new Netns("nsa", parseNetnsUrl("nsa"), 100, 4, false);

async function rejection(p: Promise<unknown>): Promise<StatusError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).to.be.instanceOf(StatusError);
  return err as StatusError;
}

describe("ops/read: errors", () => {
  it("treats a missing link as undefined in getLink but a missing netns as an error", async () => {
    expect(await getLink(answering({ code: 1, stderr: 'Device "nope" does not exist.\n' }), a, "nope")).to.equal(undefined);
    const nsGone = answering({ code: 255, stderr: 'Cannot open network namespace "nsa": No such file or directory\n' });
    expect((await rejection(getLink(nsGone, a, "x"))).code).to.equal(Code.NotFound);
  });
});

describe("ops/read: parsing ip -json", () => {
  it("reads link, addresses, alias mark and vxlan data", async () => {
    const json = JSON.stringify([
      {
        ifindex: 7,
        link_index: 3,
        ifname: "vx1",
        flags: ["BROADCAST", "MULTICAST", "UP", "LOWER_UP"],
        mtu: 1450,
        operstate: "UNKNOWN",
        address: "46:b4:cf:61:f0:b8",
        ifalias: "nsm-ts:fwd:c1:vxlan",
        linkinfo: { info_kind: "vxlan", info_data: { id: 100, remote: "198.51.100.2", local: "198.51.100.1", port: 4789 } },
        addr_info: [
          { family: "inet", local: "169.254.1.1", prefixlen: 30 },
          { family: "inet6", local: "fd00::1", prefixlen: 64 },
        ],
      },
      { ifindex: 1, ifname: "lo", flags: ["LOOPBACK"], mtu: 65536, operstate: "DOWN", addr_info: [] },
    ]);
    const exec = answering({ stdout: json });
    const links = await listLinks(exec, a);
    expect(links[0]).to.deep.equal({
      ifindex: 7,
      name: "vx1",
      mtu: 1450,
      operState: "UNKNOWN",
      up: true,
      flags: ["BROADCAST", "MULTICAST", "UP", "LOWER_UP"],
      mac: "46:b4:cf:61:f0:b8",
      alias: "nsm-ts:fwd:c1:vxlan",
      owner: { owner: "fwd", connectionId: "c1", role: "vxlan" },
      linkIndex: 3,
      kind: "vxlan",
      vxlan: { vni: 100, local: "198.51.100.1", remote: "198.51.100.2", port: 4789 },
      addresses: ["169.254.1.1/30", "fd00::1/64"],
    });
    expect(links[1]?.up).to.equal(false);
    expect((await listOwned(exec, a, "nsm-ts:fwd:")).map((l) => l.name)).to.deep.equal(["vx1"]);
    expect(await listOwned(exec, a, "nsm-ts:other:")).to.deep.equal([]);
    expect(parseLink({}).name).to.equal("");
  });

  it("reads routes with host routes given a prefix length", () => {
    expect(parseRoute({ dst: "203.0.113.7", gateway: "169.254.0.2", dev: "nsm-0", metric: 5 }, 4)).to.deep.equal({
      family: 4,
      dst: "203.0.113.7/32",
      gateway: "169.254.0.2",
      dev: "nsm-0",
      metric: 5,
    });
    expect(parseRoute({ dst: "default", gateway: "fd00::2", dev: "nsm-0" }, 6).dst).to.equal("default");
  });

  it("rejects output that is not JSON", async () => {
    expect((await rejection(listLinks(answering({ stdout: "not json" }), a))).code).to.equal(Code.Internal);
  });
});
