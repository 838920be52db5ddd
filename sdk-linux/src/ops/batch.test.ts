import { Code, StatusError } from "@nsm-ts/base/status";
import { expect } from "chai";
import type { CommandResult, CommandRunner } from "../exec.js";
import { classifyIpError, createIpExecutor } from "../executor.js";
import { Netns, parseNetnsUrl } from "../netns.js";
import { Batch } from "./batch.js";

interface Call {
  argv: readonly string[];
  stdin?: string;
}

function fakeRunner(reply: (c: Call) => Partial<CommandResult> = () => ({})): { run: CommandRunner; calls: Call[] } {
  const calls: Call[] = [];
  const run: CommandRunner = async (argv, opts) => {
    const c: Call = opts?.stdin === undefined ? { argv } : { argv, stdin: opts.stdin };
    calls.push(c);
    return { code: 0, stdout: "", stderr: "", ...reply(c) };
  };
  return { run, calls };
}

const a = new Netns("nsa", parseNetnsUrl("nsa"), 100, 4, false);
const b = new Netns("file:///proc/77/ns/net", parseNetnsUrl("file:///proc/77/ns/net"), 101, 4, false);

async function rejection(p: Promise<unknown>): Promise<StatusError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).to.be.instanceOf(StatusError);
  return err as StatusError;
}

describe("ops/batch: command building", () => {
  it("sends a whole batch through one `ip -batch -` process, one line per change", async () => {
    const { run, calls } = fakeRunner();
    const exec = createIpExecutor({ mode: "batch", run });
    const batch = new Batch(exec, a)
      .addVeth({ name: "tmp-a", peerName: "tmp-b", mtu: 1450, alias: "nsm-ts:f:c1:client", peerAlias: "nsm-ts:f:c1:endpoint" })
      .moveLink("tmp-b", b, "nsm-1")
      .rename("tmp-a", "nsm-0")
      .setMtu("nsm-0", 1400)
      .addAddress("nsm-0", "169.254.0.1/30")
      .addAddress("nsm-0", "fd00::1/64")
      .addRoute({ dst: "198.51.100.0/24", gateway: "169.254.0.2", dev: "nsm-0" })
      .addRoute({ dst: "default", gateway: "fd00::2" }, { replace: true })
      .addRoute({ dst: "203.0.113.7/32", dev: "nsm-0", src: "169.254.0.1", metric: 10 })
      .addNeighbor({ address: "169.254.0.2", mac: "AA:BB:CC:00:11:22", dev: "nsm-0" })
      .setUp("nsm-0")
      .setDown("nsm-0")
      .delNeighbor({ address: "169.254.0.2", dev: "nsm-0" })
      .delRoute({ dst: "198.51.100.0/24", gateway: "169.254.0.2" })
      .delAddress("nsm-0", "169.254.0.1/30")
      .deleteLink("nsm-0");
    expect(batch.size).to.equal(18);
    await batch.commit();
    expect(calls).to.have.length(1);
    expect(calls[0]?.argv).to.deep.equal(["ip", "-n", "nsa", "-batch", "-"]);
    expect(calls[0]?.stdin?.split("\n")).to.deep.equal([
      "link add name tmp-a mtu 1450 type veth peer name tmp-b mtu 1450",
      "link set dev tmp-a alias nsm-ts:f:c1:client",
      "link set dev tmp-b alias nsm-ts:f:c1:endpoint",
      "link set dev tmp-b netns /proc/77/ns/net name nsm-1",
      "link set dev tmp-a name nsm-0",
      "link set dev nsm-0 mtu 1400",
      "addr add 169.254.0.1/30 dev nsm-0",
      "addr add fd00::1/64 dev nsm-0 nodad",
      "route add 198.51.100.0/24 via 169.254.0.2 dev nsm-0",
      "route replace ::/0 via fd00::2",
      "route add 203.0.113.7/32 dev nsm-0 src 169.254.0.1 metric 10",
      "neigh add 169.254.0.2 lladdr aa:bb:cc:00:11:22 dev nsm-0 nud permanent",
      "link set dev nsm-0 up",
      "link set dev nsm-0 down",
      "neigh del 169.254.0.2 dev nsm-0",
      "route del 198.51.100.0/24 via 169.254.0.2",
      "addr del 169.254.0.1/30 dev nsm-0",
      "link del dev nsm-0",
      "",
    ]);
  });

  it("creates a veth peer directly in another netns and builds VXLAN devices", async () => {
    const { run, calls } = fakeRunner();
    const exec = createIpExecutor({ mode: "batch", run });
    await new Batch(exec, b)
      .addVeth({ name: "nsm-1", peerName: "nsm-1", peerNetns: a })
      .addVxlan({
        name: "vx-1",
        vni: 4242,
        local: "198.51.100.1",
        remote: "198.51.100.2",
        dev: "ul0",
        mtu: 1450,
        alias: "nsm-ts:f:c2:vxlan",
      })
      .addVxlan({ name: "vx-2", vni: 1, remote: "fd00::2", dstPort: 8472 })
      .commit();
    expect(calls[0]?.argv).to.deep.equal(["nsenter", "--net=/proc/77/ns/net", "ip", "-batch", "-"]);
    expect(calls[0]?.stdin?.trim().split("\n")).to.deep.equal([
      "link add name nsm-1 type veth peer name nsm-1 netns nsa",
      "link add name vx-1 mtu 1450 type vxlan id 4242 local 198.51.100.1 remote 198.51.100.2 dstport 4789 dev ul0",
      "link set dev vx-1 alias nsm-ts:f:c2:vxlan",
      "link add name vx-2 type vxlan id 1 remote fd00::2 dstport 8472",
    ]);
  });

  it("runs one process per change in per-command mode and a lone change without -batch", async () => {
    const { run, calls } = fakeRunner();
    const exec = createIpExecutor({ run, mode: "per-command" });
    expect(exec.mode).to.equal("per-command");
    await new Batch(exec, a).setUp("x").setMtu("x", 1500).commit();
    expect(calls.map((c) => c.argv)).to.deep.equal([
      ["ip", "-n", "nsa", "link", "set", "dev", "x", "up"],
      ["ip", "-n", "nsa", "link", "set", "dev", "x", "mtu", "1500"],
    ]);
    const batched = fakeRunner();
    await new Batch(createIpExecutor({ mode: "batch", run: batched.run }), a).setUp("x").commit();
    expect(batched.calls.map((c) => c.argv)).to.deep.equal([["ip", "-n", "nsa", "link", "set", "dev", "x", "up"]]);
    await new Batch(createIpExecutor({ mode: "batch", run: batched.run }), a).commit();
    expect(batched.calls).to.have.length(1);
  });

  it("validates every argument before anything runs", () => {
    const exec = createIpExecutor({ mode: "batch", run: fakeRunner().run });
    const bad: Array<() => unknown> = [
      () => new Batch(exec, a).addVeth({ name: "much-too-long-name", peerName: "p" }),
      () => new Batch(exec, a).addVeth({ name: "x", peerName: "y", peerNetns: b, peerAlias: "nsm-ts:f:c" }),
      () => new Batch(exec, a).addVeth({ name: "x", peerName: "y", mtu: 20 }),
      () => new Batch(exec, a).addAddress("x", "169.254.0.1"),
      () => new Batch(exec, a).addAddress("x", "169.254.0.1/33"),
      () => new Batch(exec, a).addAddress("x", "fd00::1/129"),
      () => new Batch(exec, a).addRoute({ dst: "198.51.100.0/24" }),
      () => new Batch(exec, a).addRoute({ dst: "198.51.100.0/24", gateway: "fd00::1" }),
      () => new Batch(exec, a).addNeighbor({ address: "169.254.0.2", mac: "zz:bb:cc:00:11:22", dev: "x" }),
      () => new Batch(exec, a).addNeighbor({ address: "169.254.0.2", dev: "x" }),
      () => new Batch(exec, a).addVxlan({ name: "v", vni: 0, remote: "198.51.100.2" }),
      () => new Batch(exec, a).addVxlan({ name: "v", vni: 1 << 24, remote: "198.51.100.2" }),
      () => new Batch(exec, a).addVxlan({ name: "v", vni: 5, remote: "198.51.100.2", local: "fd00::1" }),
      () => new Batch(exec, a).setAlias("x", "has space"),
      () => new Batch(exec, a).setUp("x; rm"),
    ];
    for (const fn of bad) {
      expect(fn).to.throw(StatusError).with.property("code", Code.InvalidArgument);
    }
  });

  it("refuses to commit a batch twice", async () => {
    const exec = createIpExecutor({ mode: "batch", run: fakeRunner().run });
    const batch = new Batch(exec, a).setUp("x");
    await batch.commit();
    expect((await rejection(batch.commit())).code).to.equal(Code.FailedPrecondition);
    expect(() => batch.setDown("x")).to.throw(StatusError);
  });
});

describe("ops/batch: errors", () => {
  it("names the failing line of a batch", async () => {
    const { run } = fakeRunner(() => ({ code: 1, stderr: 'Cannot find device "nope"\nCommand failed -:2\n' }));
    const err = await rejection(new Batch(createIpExecutor({ mode: "batch", run }), a).setUp("lo").setUp("nope").commit());
    expect(err.code).to.equal(Code.NotFound);
    expect(err.message).to.equal('kernel: setUp nope in netns nsa: Cannot find device "nope"');
  });

  it("says root or CAP_NET_ADMIN is needed on EPERM", async () => {
    const { run } = fakeRunner(() => ({ code: 2, stderr: "RTNETLINK answers: Operation not permitted\n" }));
    const err = await rejection(new Batch(createIpExecutor({ mode: "batch", run }), a).addVeth({ name: "x", peerName: "y" }).commit());
    expect(err.code).to.equal(Code.PermissionDenied);
    expect(err.message).to.contain("needs root or CAP_NET_ADMIN");
    expect(classifyIpError("nsenter: reassociate to namespace 'ns/net' failed: Operation not permitted", b).code).to.equal(
      Code.PermissionDenied,
    );
  });

  it("reports a missing namespace as NotFound naming it, for ip -n and for nsenter", () => {
    const named = classifyIpError('Cannot open network namespace "nsa": No such file or directory', a);
    expect(named.code).to.equal(Code.NotFound);
    expect(named.reason).to.match(/^netns nsa not found/);
    const byPath = classifyIpError("nsenter: cannot open /proc/77/ns/net: No such file or directory", b);
    expect(byPath.code).to.equal(Code.NotFound);
    expect(byPath.reason).to.match(/^netns \/proc\/77\/ns\/net not found/);
    expect(classifyIpError('Error: argument "x" is wrong: Invalid "netns" value', a).code).to.equal(Code.NotFound);
  });

  it("maps other kernel answers to meaningful codes", () => {
    expect(classifyIpError("RTNETLINK answers: File exists", a).code).to.equal(Code.AlreadyExists);
    expect(classifyIpError("Error: Nexthop has invalid gateway.", a).code).to.equal(Code.FailedPrecondition);
    expect(classifyIpError("Error: Device for nexthop is not up.", a).code).to.equal(Code.FailedPrecondition);
    expect(classifyIpError("RTNETLINK answers: No such process", a).code).to.equal(Code.NotFound);
    expect(classifyIpError('Error: argument "x" is wrong: invalid mtu', a).code).to.equal(Code.InvalidArgument);
    expect(classifyIpError("something odd", a).code).to.equal(Code.Internal);
  });

  it("gives up on an ip process that hangs with DeadlineExceeded", async () => {
    const hang: CommandRunner = (_argv, opts) =>
      new Promise((_resolve, reject) => {
        opts?.signal?.addEventListener("abort", () => reject(Object.assign(new Error("aborted"), { name: "AbortError" })));
      });
    const err = await rejection(new Batch(createIpExecutor({ mode: "batch", run: hang, timeoutMs: 20 }), a).setUp("x").setUp("y").commit());
    expect(err.code).to.equal(Code.DeadlineExceeded);
    expect(err.message).to.equal("kernel: batch of 2 changes in netns nsa: ip did not finish within 20 ms");
  });
});
