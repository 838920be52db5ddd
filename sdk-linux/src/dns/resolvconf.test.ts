/** ResolvConfOwner on temp files: takeover, restore, and recovery after a run that could not restore. */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect } from "chai";
import { isMountPoint, RESOLV_CONF_MARKER, ResolvConfOwner } from "./resolvconf.js";

const ORIGINAL =
  "# the pod's\nnameserver 198.51.100.10\nnameserver 198.51.100.11\nsearch default.svc.cluster.local svc.cluster.local\noptions ndots:5\n";

describe("sdk-linux dns: ResolvConfOwner", () => {
  let dir = "";
  let path = "";
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "nsm-resolv-"));
    path = join(dir, "resolv.conf");
    writeFileSync(path, ORIGINAL);
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it("points the resolver at the forwarder with the mesh's search domains first and the original's options, then restores it byte for byte", async () => {
    const owner = await ResolvConfOwner.open(path);
    expect(owner.original.nameservers).to.deep.equal(["198.51.100.10", "198.51.100.11"]);
    await owner.pointAt("127.0.0.1", ["my-vl3"]);
    const text = readFileSync(path, "utf8");
    expect(text.split("\n").slice(0, 4)).to.deep.equal([
      RESOLV_CONF_MARKER,
      "nameserver 127.0.0.1",
      "search my-vl3 default.svc.cluster.local svc.cluster.local",
      "options ndots:5",
    ]);
    expect(text).to.not.match(/^nameserver 198/m);
    await owner.restore();
    expect(readFileSync(path, "utf8")).to.equal(ORIGINAL);
    await owner.restore();
    expect(readFileSync(path, "utf8")).to.equal(ORIGINAL);
  });

  it("tells a mount point (a pod's or `ip netns exec`'s resolv.conf) from a plain file", async () => {
    expect(await isMountPoint("/proc")).to.equal(true);
    expect(await isMountPoint(path)).to.equal(false);
  });

  it("a file left pointing at the forwarder (the client was killed) is recovered on the next start", async () => {
    const first = await ResolvConfOwner.open(path);
    await first.pointAt("127.0.0.1", ["my-vl3"]);
    const second = await ResolvConfOwner.open(path);
    expect(readFileSync(path, "utf8")).to.equal(ORIGINAL);
    expect(second.originalText).to.equal(ORIGINAL);
    expect(second.original.nameservers).to.deep.equal(["198.51.100.10", "198.51.100.11"]);
  });
});
