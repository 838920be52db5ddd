import { Code, StatusError } from "@nsm-ts/base/status";
import {
  Batch,
  createIpExecutor,
  getLink,
  type IpExecutor,
  type IpMode,
  listLinks,
  listNeighbors,
  listOwned,
  listRoutes,
  type Netns,
  ownerAlias,
  removeOwned,
  runCommand,
  vxlanMtu,
} from "@nsm-ts/sdk-linux";
import { expect } from "chai";
import { KernelFixture, ping, skipUnlessKernel } from "./fixture.js";

async function rejection(p: Promise<unknown>): Promise<StatusError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).to.be.instanceOf(StatusError);
  return err as StatusError;
}

/** Puts a veth between `a` and `b` with addresses, as a forwarder would, in one batch per namespace. */
async function vethPair(ip: IpExecutor, a: Netns, b: Netns, v4: [string, string], v6?: [string, string]): Promise<void> {
  const ba = new Batch(ip, a)
    .addVeth({ name: "nsm-a", peerName: "nsm-b", peerNetns: b, mtu: 1400 })
    .addAddress("nsm-a", v4[0])
    .setUp("nsm-a");
  if (v6) ba.addAddress("nsm-a", v6[0]);
  await ba.commit();
  const bb = new Batch(ip, b).addAddress("nsm-b", v4[1]).setUp("nsm-b");
  if (v6) bb.addAddress("nsm-b", v6[1]);
  await bb.commit();
}

describe("kernel: sdk-linux operations in real namespaces", function () {
  this.timeout(30000);
  let fx: KernelFixture;

  before(async function () {
    await skipUnlessKernel(this);
  });
  beforeEach(() => {
    fx = new KernelFixture();
  });
  const execs: IpExecutor[] = [];
  afterEach(async () => {
    for (const e of execs.splice(0)) e.close?.();
    await fx.cleanup();
  });

  for (const mode of ["batch", "per-command", "persistent"] as IpMode[]) {
    it(`connects two namespaces with a veth pair and pings across (${mode})`, async () => {
      const ip = createIpExecutor({ mode });
      execs.push(ip);
      const a = await fx.netns("a");
      const b = await fx.netns("b");
      await vethPair(ip, a, b, ["169.254.0.1/30", "169.254.0.2/30"], ["fd00:5::1/64", "fd00:5::2/64"]);
      const la = await getLink(ip, a, "nsm-a");
      const lb = await getLink(ip, b, "nsm-b");
      expect(la?.kind).to.equal("veth");
      expect(la?.up).to.equal(true);
      expect(la?.mtu).to.equal(1400);
      expect(la?.addresses).to.include.members(["169.254.0.1/30", "fd00:5::1/64"]);
      expect(la?.linkIndex).to.equal(lb?.ifindex);
      expect(await ping(a, "169.254.0.2")).to.equal(true);
      expect(await ping(b, "fd00:5::1")).to.equal(true);
    });
  }

  it("builds a forwarder-style cross-connect: veth made in a third netns, both ends moved and renamed", async () => {
    const ip = createIpExecutor();
    const fwd = await fx.netns("fwd");
    const client = await fx.netns("cl");
    const endpoint = await fx.netns("ep");
    await new Batch(ip, fwd)
      .addVeth({
        name: "tmp-c1-a",
        peerName: "tmp-c1-b",
        mtu: 1450,
        alias: ownerAlias({ owner: "fwd", connectionId: "c1", role: "client" }),
        peerAlias: ownerAlias({ owner: "fwd", connectionId: "c1", role: "endpoint" }),
      })
      .moveLink("tmp-c1-a", client, "nsm-1")
      .moveLink("tmp-c1-b", endpoint, "nsm-1")
      .commit();
    await new Batch(ip, client)
      .addAddress("nsm-1", "198.51.100.1/32")
      .setUp("nsm-1")
      .addRoute({ dst: "198.51.100.2/32", dev: "nsm-1" })
      .commit();
    await new Batch(ip, endpoint)
      .addAddress("nsm-1", "198.51.100.2/32")
      .setUp("nsm-1")
      .addRoute({ dst: "198.51.100.1/32", dev: "nsm-1" })
      .commit();
    expect(await listLinks(ip, fwd)).to.have.length(1); // only lo is left in the forwarder's netns
    const c = await getLink(ip, client, "nsm-1");
    expect(c?.owner).to.deep.equal({ owner: "fwd", connectionId: "c1", role: "client" });
    expect(c?.mtu).to.equal(1450);
    expect((await getLink(ip, endpoint, "nsm-1"))?.owner?.role).to.equal("endpoint");
    expect(await ping(client, "198.51.100.2")).to.equal(true);
    await new Batch(ip, client).deleteLink("nsm-1").commit();
    expect(await getLink(ip, endpoint, "nsm-1")).to.equal(undefined); // deleting one end removes the peer
  });

  it("routes through a gateway", async () => {
    const ip = createIpExecutor();
    const a = await fx.netns("a");
    const b = await fx.netns("b");
    await vethPair(ip, a, b, ["169.254.1.1/30", "169.254.1.2/30"]);
    await new Batch(ip, b).setUp("lo").addAddress("lo", "203.0.113.10/32").commit();
    expect(await ping(a, "203.0.113.10")).to.equal(false);
    await new Batch(ip, a).addRoute({ dst: "203.0.113.0/24", gateway: "169.254.1.2", dev: "nsm-a" }).commit();
    const routes = await listRoutes(ip, a);
    expect(routes).to.deep.include({ family: 4, dst: "203.0.113.0/24", gateway: "169.254.1.2", dev: "nsm-a" });
    expect(await ping(a, "203.0.113.10")).to.equal(true);
    await new Batch(ip, a).delRoute({ dst: "203.0.113.0/24", gateway: "169.254.1.2" }).commit();
    expect((await listRoutes(ip, a)).some((r) => r.dst === "203.0.113.0/24")).to.equal(false);
    const err = await rejection(new Batch(ip, a).addRoute({ dst: "203.0.113.0/24", gateway: "198.51.100.99" }).commit());
    expect(err.message).to.match(/^kernel: addRoute 203\.0\.113\.0\/24 in netns nsmts-t-/);
  });

  it("installs static neighbours (ARP and ND) that the kernel uses", async () => {
    const ip = createIpExecutor();
    const a = await fx.netns("a");
    const b = await fx.netns("b");
    await vethPair(ip, a, b, ["169.254.2.1/30", "169.254.2.2/30"], ["fd00:6::1/64", "fd00:6::2/64"]);
    const mac = (await getLink(ip, b, "nsm-b"))?.mac;
    expect(mac).to.be.a("string");
    await new Batch(ip, a)
      .addNeighbor({ address: "169.254.2.2", mac: mac ?? "", dev: "nsm-a" })
      .addNeighbor({ address: "fd00:6::2", mac: mac ?? "", dev: "nsm-a" }, { replace: true })
      .commit();
    const neigh = await listNeighbors(ip, a);
    const v4 = neigh.find((n) => n.address === "169.254.2.2");
    expect(v4?.mac).to.equal(mac);
    expect(v4?.state).to.include("PERMANENT");
    expect(neigh.find((n) => n.address === "fd00:6::2")?.state).to.include("PERMANENT");
    expect(await ping(a, "169.254.2.2")).to.equal(true);
    expect(await ping(a, "fd00:6::2")).to.equal(true);
    await new Batch(ip, a).delNeighbor({ address: "169.254.2.2", dev: "nsm-a" }).commit();
    expect((await listNeighbors(ip, a)).find((n) => n.address === "169.254.2.2")?.state ?? []).to.not.include("PERMANENT");
  });

  it("sets MTU, up/down and renames a link keeping its ifindex", async () => {
    const ip = createIpExecutor();
    const a = await fx.netns("a");
    await new Batch(ip, a).addVeth({ name: "v0", peerName: "v1" }).commit();
    const before = await getLink(ip, a, "v0");
    await new Batch(ip, a).setMtu("v0", 1280).rename("v0", "renamed-v0").setUp("renamed-v0").setUp("v1").commit();
    expect(await getLink(ip, a, "v0")).to.equal(undefined);
    const after = await getLink(ip, a, "renamed-v0");
    expect(after?.ifindex).to.equal(before?.ifindex);
    expect(after?.mtu).to.equal(1280);
    expect(after?.up).to.equal(true);
    await new Batch(ip, a).setDown("renamed-v0").commit();
    expect((await getLink(ip, a, "renamed-v0"))?.up).to.equal(false);
    // Checked while the batch is built, before any process runs.
    expect(() => new Batch(ip, a).setMtu("renamed-v0", 65536))
      .to.throw(StatusError)
      .with.property("code", Code.InvalidArgument);
  });

  for (const fam of [4, 6] as const) {
    it(`carries traffic over VXLAN between two namespaces joined by an IPv${fam} veth underlay`, async () => {
      const ip = createIpExecutor();
      const a = await fx.netns("a");
      const b = await fx.netns("b");
      const [ua, ub, len] = fam === 4 ? ["198.51.100.1", "198.51.100.2", 24] : ["fd00:7::1", "fd00:7::2", 64];
      await new Batch(ip, a)
        .addVeth({ name: "ul0", peerName: "ul0", peerNetns: b })
        .addAddress("ul0", `${ua}/${len}`)
        .setUp("ul0")
        .commit();
      await new Batch(ip, b).addAddress("ul0", `${ub}/${len}`).setUp("ul0").commit();
      const mtu = vxlanMtu(1500, fam);
      const vx = (ns: Netns, local: string, remote: string, addr: string) =>
        new Batch(ip, ns)
          .addVxlan({
            name: "vx-4242",
            vni: 4242,
            local,
            remote,
            dev: "ul0",
            mtu,
            alias: ownerAlias({ owner: "fwd", connectionId: "c9", role: "vxlan" }),
          })
          .addAddress("vx-4242", addr)
          .setUp("vx-4242")
          .commit();
      await vx(a, ua, ub, "169.254.20.1/30");
      await vx(b, ub, ua, "169.254.20.2/30");
      const link = await getLink(ip, a, "vx-4242");
      expect(link?.kind).to.equal("vxlan");
      expect(link?.vxlan).to.deep.equal({ vni: 4242, local: ua, remote: ub, port: 4789 });
      expect(link?.mtu).to.equal(fam === 4 ? 1450 : 1430);
      expect(link?.owner?.connectionId).to.equal("c9");
      expect(await ping(a, "169.254.20.2")).to.equal(true);
      // a full-size packet fits: the VXLAN MTU left room for the encapsulation
      const big = await runCommand(a.execArgv(["ping", "-c1", "-W1", "-M", "do", "-s", String(mtu - 28), "169.254.20.2"]));
      expect(big.code, big.stdout + big.stderr).to.equal(0);
    });
  }

  it("lists links by owner mark and removes leftovers while keeping adopted ones", async () => {
    const ip = createIpExecutor();
    const a = await fx.netns("a");
    const mark = (owner: string, id: string) => ownerAlias({ owner, connectionId: id });
    await new Batch(ip, a)
      .addVeth({ name: "f1-c1", peerName: "f1-c1p", alias: mark("f1", "c1") })
      .addVeth({ name: "f1-c2", peerName: "f1-c2p", alias: mark("f1", "c2"), peerAlias: mark("f1", "c2") })
      .addVeth({ name: "f10-c3", peerName: "f10-c3p", alias: mark("f10", "c3") })
      .addVeth({ name: "plain", peerName: "plainp" })
      .setAlias("plain", "not-ours")
      .commit();
    const owned = await listOwned(ip, a, "nsm-ts:f1:");
    expect(owned.map((l) => l.name).sort()).to.deep.equal(["f1-c1", "f1-c2", "f1-c2p"]);
    const removed = await removeOwned(ip, a, "nsm-ts:f1:", (l) => l.owner?.connectionId === "c1");
    expect(removed).to.have.length(1); // one end of c2; deleting it took the peer along
    expect(["f1-c2", "f1-c2p"]).to.include(removed[0]);
    const left = (await listLinks(ip, a)).map((l) => l.name).sort();
    expect(left).to.deep.equal(["f1-c1", "f1-c1p", "f10-c3", "f10-c3p", "lo", "plain", "plainp"]);
  });

  it("works on namespaces given as file:///proc/<pid>/ns/net and reports them as gone after the process exits", async () => {
    const { openNetns } = await import("@nsm-ts/sdk-linux");
    const ip = createIpExecutor();
    const named = await fx.netns("a");
    const pid = await fx.holder(named);
    const byPid = await openNetns(`file:///proc/${pid}/ns/net`);
    expect(byPid.kind).to.equal("path");
    expect(byPid.sameAs(named)).to.equal(true);
    await new Batch(ip, byPid).addVeth({ name: "p0", peerName: "p1" }).setUp("p0").commit();
    expect((await getLink(ip, named, "p0"))?.up).to.equal(true);
    // move a link from a named netns into the pid-addressed one
    const other = await fx.netns("b");
    await new Batch(ip, other).addVeth({ name: "q0", peerName: "q1" }).commit();
    await new Batch(ip, other).moveLink("q0", byPid, "moved").commit();
    expect(await getLink(ip, named, "moved")).to.not.equal(undefined);
    await fx.kill(pid);
    const err = await rejection(new Batch(ip, byPid).setUp("p0").commit());
    expect(err.code).to.equal(Code.NotFound);
    expect(err.message).to.contain(`/proc/${pid}/ns/net`);
  });

  it("resolves inode:// URLs of unnamed namespaces through a process in them, and follows the namespace when that process exits", async () => {
    const { netnsInodeUrl, openNetns } = await import("@nsm-ts/sdk-linux");
    const ip = createIpExecutor();
    // An unnamed netns, as a pod has from the forwarder's point of view: two processes in it, no /run/netns entry.
    const first = await fx.unnamedHolder();
    const second = await fx.holderIn(`/proc/${first}/ns/net`);
    const url = netnsInodeUrl(`/proc/${first}/ns/net`);
    const ns = await openNetns(url);
    expect(ns.kind).to.equal("path");
    expect([`/proc/${first}/ns/net`, `/proc/${second}/ns/net`]).to.include(ns.path);
    await new Batch(ip, ns).addVeth({ name: "i0", peerName: "i1" }).setUp("i0").commit();
    const used = ns.path === `/proc/${first}/ns/net` ? first : second;
    const other = used === first ? second : first;
    await fx.kill(used);
    await ns.verify();
    expect(ns.path).to.equal(`/proc/${other}/ns/net`);
    expect((await getLink(ip, ns, "i0"))?.up).to.equal(true);
    await fx.kill(other);
    const gone = await rejection(ns.verify());
    expect(gone.code).to.equal(Code.NotFound);
    expect(gone.message).to.contain("hostPID");
  });

  it("fails with clear errors for missing namespaces and links", async () => {
    const { deleteNamedNetns, openNetns } = await import("@nsm-ts/sdk-linux");
    const ip = createIpExecutor();
    const missing = await rejection(openNetns("nsmts-t-never-existed"));
    expect(missing.code).to.equal(Code.NotFound);
    expect(missing.message).to.contain("nsmts-t-never-existed");

    const a = await fx.netns("gone");
    const name = a.name ?? "";
    await deleteNamedNetns(name);
    for (const op of [
      () => new Batch(ip, a).setUp("lo").commit(),
      () => listLinks(ip, a),
      () => new Batch(ip, a).setUp("lo").setMtu("lo", 1500).commit(),
    ]) {
      const err = await rejection(op());
      expect(err.code).to.equal(Code.NotFound);
      expect(err.message).to.contain(`netns ${name} not found`);
    }

    const b = await fx.netns("b");
    expect(await getLink(ip, b, "nope")).to.equal(undefined);
    const noLink = await rejection(new Batch(ip, b).deleteLink("nope").commit());
    expect(noLink.code).to.equal(Code.NotFound);
    expect(noLink.message).to.match(/^kernel: deleteLink nope in netns nsmts-t-.*-b: /);
    await new Batch(ip, b).addVeth({ name: "dup", peerName: "dup-p" }).commit();
    expect((await rejection(new Batch(ip, b).addVeth({ name: "dup", peerName: "dup-q" }).commit())).code).to.equal(Code.AlreadyExists);
    const target = await rejection(new Batch(ip, b).moveLink("dup", a).commit());
    expect(target.code).to.equal(Code.NotFound);
  });
});
