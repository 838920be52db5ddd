/**
 * What a refresh and a Close of a remote cross-connect read: the connection's own links, asked for by name in one
 * `ip -batch` per namespace, never a listing of every link of the forwarder's netns (where each remote connection
 * has two or three links, so a listing per refresh grows with the connections). A broken link is still noticed.
 */
import { chmod, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CallContext } from "@nsm-ts/base/context";
import { chain, handler } from "@nsm-ts/sdk/networkservice";
import { Batch, createKernelForwarder, getLink, listOwned, ownerPrefix } from "@nsm-ts/sdk-linux";
import { expect } from "chai";
import type { KernelFixture } from "../kernel/fixture.js";
import { type Addresses, endpoint, forwarderPart, ip, owned, refreshOf, request, underlay, useKernelFixture } from "./xconnect.fixture.js";

describe("kernel mechanisms: refresh and close read a connection's links by name", function () {
  this.timeout(60000);
  let fx: KernelFixture;
  let owner: string;
  let dir: string;
  useKernelFixture((f, o) => {
    fx = f;
    owner = o;
  });
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "nsmts-refresh-"));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("checks the VXLAN leg by name on refresh, rebuilds it when a link is gone, and closes without listing the netns", async () => {
    const a = await fx.netns("a");
    const b = await fx.netns("b");
    const f1 = await fx.netns("f1");
    const f2 = await fx.netns("f2");
    await underlay(f1, f2, "198.51.100.1/24", "198.51.100.2/24");
    // Other links in the forwarder's netns, as other connections would have.
    for (let i = 0; i < 5; i++) await new Batch(ip, f1).addVeth({ name: `other${i}`, peerName: `otherp${i}` }).commit();
    // An `ip` that logs every start's arguments and stdin lines, then runs the real one.
    const log = join(dir, "ip.log");
    const wrapper = join(dir, "ip");
    await writeFile(wrapper, `#!/bin/sh\necho "ARGV $*" >> ${log}\nexec ip "$@"\n`);
    await chmod(wrapper, 0o755);
    const starts = async (): Promise<string[]> => (await readFile(log, "utf8").catch(() => "")).split("\n").filter((l) => l !== "");

    const o1 = `${owner}-1`;
    const fwd1 = createKernelForwarder({ owner: o1, forwarderNetnsUrl: f1.path, tunnelIp: "198.51.100.1", ip: { tools: { ip: wrapper } } });
    const fwd2 = createKernelForwarder({ owner: `${owner}-2`, forwarderNetnsUrl: f2.path, tunnelIp: "198.51.100.2" });
    const plan: Addresses = { src: ["169.254.31.1/32"], dst: ["169.254.31.2/32"] };
    const node2 = [...forwarderPart(fwd2, "unix:///tmp/nse.sock"), ...endpoint(b, () => plan)];
    const h = handler(chain(...forwarderPart(fwd1, "tcp://198.51.100.2:5001"), ...node2));
    const ctx = CallContext.create();
    const conn = await h.request(ctx, request("r1", a, "nsm-1"));
    const [vx] = (await listOwned(ip, f1, ownerPrefix(o1))).filter((l) => l.kind === "vxlan");
    expect(vx?.name).to.be.a("string");

    await writeFile(log, "");
    const again = await h.request(ctx, refreshOf(conn));
    const reads = await starts();
    expect(
      reads.filter((l) => / addr show$/.test(l)),
      "no listing of a whole namespace",
    ).to.deep.equal([]);
    expect(
      reads.filter((l) => l.includes(`${f1.name} -json -d -force -batch -`)),
      "one by-name read in the forwarder's netns",
    ).to.have.length(1);
    expect((await listOwned(ip, f1, ownerPrefix(o1))).find((l) => l.kind === "vxlan")?.ifindex, "refresh kept the links").to.equal(
      vx?.ifindex,
    );

    // A link of the leg deleted behind the forwarder's back: the by-name check misses it and the leg is rebuilt.
    await new Batch(ip, f1).deleteLink(vx?.name ?? "").commit();
    const rebuilt = await h.request(ctx, refreshOf(again));
    expect((await listOwned(ip, f1, ownerPrefix(o1))).filter((l) => l.kind === "vxlan")).to.have.length(1);
    expect((await getLink(ip, a, "nsm-1"))?.up).to.equal(true);

    await writeFile(log, "");
    await h.close(ctx, rebuilt);
    expect(
      (await starts()).filter((l) => / addr show$/.test(l)),
      "close found its links by name",
    ).to.deep.equal([]);
    expect(await owned(o1, a, f1)).to.deep.equal([]);
    expect((await getLink(ip, f1, "other4"))?.name, "other links untouched").to.equal("other4");
  });
});
