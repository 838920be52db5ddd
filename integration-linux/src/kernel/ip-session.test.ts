/**
 * The `persistent` ip executor in real namespaces: one long-lived `ip -force -batch -` per namespace serves many
 * commits, a commit still stops at its first failed line with that line's error, the process ends when idle (so a
 * namespace is not held), and a namespace that is gone reads NotFound as with a process per commit.
 */
import { chmod, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { MockClock } from "@nsm-ts/base/clock";
import { Code, StatusError } from "@nsm-ts/base/status";
import { Batch, createIpExecutor, deleteNamedNetns, getLink, type IpExecutor, openNetns } from "@nsm-ts/sdk-linux";
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

describe("kernel: persistent ip executor", function () {
  this.timeout(30000);
  let fx: KernelFixture;
  let dir: string;
  let ip: IpExecutor | undefined;
  /** An `ip` that logs each start with its arguments, then runs the real one. */
  let wrapper: string;
  const starts = async (): Promise<string[]> =>
    (await readFile(join(dir, "starts"), "utf8").catch(() => "")).split("\n").filter((l) => l.includes("-batch"));

  before(async function () {
    await skipUnlessKernel(this);
  });
  beforeEach(async () => {
    fx = new KernelFixture();
    dir = await mkdtemp(join(tmpdir(), "nsmts-ipsession-"));
    wrapper = join(dir, "ip");
    await writeFile(wrapper, `#!/bin/sh\necho "$*" >> ${join(dir, "starts")}\nexec ip "$@"\n`);
    await chmod(wrapper, 0o755);
  });
  afterEach(async () => {
    ip?.close?.();
    ip = undefined;
    await fx.cleanup();
    await rm(dir, { recursive: true, force: true });
  });

  it("serves many commits in one namespace from one process, and pings across", async () => {
    ip = createIpExecutor({ mode: "persistent", tools: { ip: wrapper } });
    const a = await fx.netns("a");
    const b = await fx.netns("b");
    await new Batch(ip, a)
      .addVeth({ name: "nsm-a", peerName: "nsm-b", peerNetns: b, mtu: 1400 })
      .addAddress("nsm-a", "169.254.10.1/30")
      .setUp("nsm-a")
      .commit();
    await new Batch(ip, b).addAddress("nsm-b", "169.254.10.2/30").setUp("nsm-b").commit();
    for (let i = 0; i < 5; i++) await new Batch(ip, a).addAddress("nsm-a", `fd00:10::${i + 1}/64`).commit();
    expect(await ping(a, "169.254.10.2")).to.equal(true);
    expect((await getLink(ip, a, "nsm-a"))?.addresses).to.include.members(["169.254.10.1/30", "fd00:10::5/64"]);
    expect(await starts(), "one process per namespace").to.have.length(2);
  });

  it("a commit stops at its first failed line, names it, and the session goes on", async () => {
    ip = createIpExecutor({ mode: "persistent", tools: { ip: wrapper } });
    const a = await fx.netns("a");
    await new Batch(ip, a).addVeth({ name: "d0", peerName: "d0p" }).commit();
    const err = await rejection(
      new Batch(ip, a).addVeth({ name: "d0", peerName: "d0p" }).addVeth({ name: "d1", peerName: "d1p" }).commit(),
    );
    expect(err.code).to.equal(Code.AlreadyExists);
    expect(err.message).to.match(/^kernel: addVeth d0\/d0p in netns nsmts-t-/);
    expect(await getLink(ip, a, "d1"), "the line after the failed one did not run").to.equal(undefined);
    await new Batch(ip, a).addVeth({ name: "d2", peerName: "d2p" }).setUp("d2").commit();
    expect((await getLink(ip, a, "d2"))?.up).to.equal(true);
    expect(await starts()).to.have.length(1);
  });

  it("a link deleted and made again under the same name is found in the same process (iproute2's name cache is emptied per commit)", async () => {
    ip = createIpExecutor({ mode: "persistent", tools: { ip: wrapper } });
    const a = await fx.netns("a");
    const b = await fx.netns("b");
    for (let i = 0; i < 3; i++) {
      await new Batch(ip, a).addVeth({ name: "nsm-0", peerName: "nsm-0", peerNetns: b }).setUp("nsm-0").commit();
      // The peer was made by another process's request; this session looked its name up before, in round i - 1.
      await new Batch(ip, b)
        .setAlias("nsm-0", `round-${i}`)
        .addAddress("nsm-0", "169.254.20.2/32")
        .setUp("nsm-0")
        .addRoute({ dst: "169.254.20.1/32", dev: "nsm-0" })
        .commit();
      expect((await getLink(ip, b, "nsm-0"))?.alias).to.equal(`round-${i}`);
      await new Batch(ip, a).deleteLink("nsm-0").commit();
    }
    expect(await starts(), "no retry in a fresh process").to.have.length(2);
  });

  it("a name whose old index now belongs to another link reaches the new link, never the other", async () => {
    ip = createIpExecutor({ mode: "persistent", tools: { ip: wrapper } });
    const other = createIpExecutor({ mode: "batch" }); // someone else changing the namespace behind the session's back
    const a = await fx.netns("a");
    await new Batch(ip, a).addVeth({ name: "x0", peerName: "x0p" }).addAddress("x0", "198.51.100.1/32").commit();
    const old = (await getLink(ip, a, "x0"))?.ifindex ?? 0;
    expect(old).to.be.greaterThan(0);
    await new Batch(other, a).deleteLink("x0").commit();
    // A link that takes the freed index (as one moved in from another namespace keeps its index when it is free).
    await other.apply(a, [
      {
        what: "add y0 at x0's old index",
        args: ["link", "add", "name", "y0", "index", String(old), "type", "veth", "peer", "name", "y0p"],
      },
    ]);
    await new Batch(other, a).addVeth({ name: "x0", peerName: "x0p" }).commit();
    await new Batch(ip, a)
      .addAddress("x0", "198.51.100.2/32")
      .addNeighbor({ address: "198.51.100.3", mac: "02:00:00:00:00:03", dev: "x0" })
      .setAlias("x0", "again")
      .commit();
    const y0 = await getLink(ip, a, "y0");
    expect(y0?.ifindex).to.equal(old);
    expect(y0?.addresses, "nothing landed on the link holding the old index").to.deep.equal([]);
    expect(y0?.alias).to.equal(undefined);
    const x0 = await getLink(ip, a, "x0");
    expect(x0?.addresses).to.deep.equal(["198.51.100.2/32"]);
    expect(x0?.alias).to.equal("again");
    expect(await starts(), "one process did it all").to.have.length(1);
  });

  it("ends the process after idleMs without changes; the next commit starts a new one", async () => {
    const clock = new MockClock();
    ip = createIpExecutor({ mode: "persistent", tools: { ip: wrapper }, clock, idleMs: 1000 });
    const a = await fx.netns("a");
    await new Batch(ip, a).addVeth({ name: "d0", peerName: "d0p" }).commit();
    expect(clock.pending()).to.equal(1);
    await clock.advance(1000);
    expect(clock.pending()).to.equal(0);
    await new Batch(ip, a).addVeth({ name: "d1", peerName: "d1p" }).commit();
    expect(await starts()).to.have.length(2);
    expect(await getLink(ip, a, "d1")).to.not.equal(undefined);
    ip.close?.();
    expect(clock.pending()).to.equal(0);
  });

  it("a namespace that is gone fails with NotFound, by name and by path", async () => {
    ip = createIpExecutor({ mode: "persistent" });
    const byName = await fx.netns("gone");
    const holder = await fx.unnamedHolder();
    const byPath = await openNetns(`file:///proc/${holder}/ns/net`);
    await deleteNamedNetns(byName.name ?? "");
    await fx.kill(holder);
    expect((await rejection(new Batch(ip, byName).addVeth({ name: "d0", peerName: "d0p" }).commit())).code).to.equal(Code.NotFound);
    expect((await rejection(new Batch(ip, byPath).addVeth({ name: "d0", peerName: "d0p" }).commit())).code).to.equal(Code.NotFound);
  });
});
