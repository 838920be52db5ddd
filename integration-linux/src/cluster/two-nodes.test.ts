/**
 * Issue 7 acceptance, two nodes: node netns 1 and 2 joined by a veth underlay (198.51.100.1/24 ↔ .2/24, MTU
 * 1400), each running cmd-nsmgr and a KERNEL cmd-forwarder whose NSM_TUNNEL_IP is its underlay address; the
 * registry runs in node 1 on the underlay. The client pod hangs off node 1, the endpoint pod off node 2: the
 * connection crosses the underlay through VXLAN, ping works, the client interface MTU is the underlay MTU − 50,
 * and closing removes everything on both nodes.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect } from "chai";
import { KernelFixture, skipUnlessKernel } from "../kernel/fixture.js";
import { bare, ip, links, Processes, pingFrom, roleNamespaces, waitUntil } from "./cluster.js";

const SERVICE = "kernel-responder-remote";
const IFNAME = "nsm-1";
const UNDERLAY_MTU = 1400;
const VXLAN_OVERHEAD = 50;

interface ConnSummary {
  id: string;
  srcIpAddrs: string[];
  dstIpAddrs: string[];
  path: Array<{ name: string }>;
}

describe("cluster: two nodes over a VXLAN underlay, KERNEL data plane, real programs", function () {
  this.timeout(180_000);
  let fx: KernelFixture;
  let procs: Processes;
  let dir: string;
  const ns: Record<"n1" | "n2" | "a" | "b", string> = { n1: "", n2: "", a: "", b: "" };

  before(async function () {
    await skipUnlessKernel(this);
  });

  beforeEach(async () => {
    fx = new KernelFixture();
    procs = new Processes();
    dir = mkdtempSync(join(tmpdir(), "nsm-cluster2-"));
    Object.assign(ns, await roleNamespaces(fx, ["n1", "n2", "a", "b"] as const));
    await ip(
      "-n",
      ns.n1,
      "link",
      "add",
      "underlay",
      "mtu",
      String(UNDERLAY_MTU),
      "type",
      "veth",
      "peer",
      "name",
      "underlay",
      "netns",
      ns.n2,
      "mtu",
      String(UNDERLAY_MTU),
    );
    for (const [n, addr] of [
      [ns.n1, "198.51.100.1/24"],
      [ns.n2, "198.51.100.2/24"],
    ] as const) {
      await ip("-n", n, "addr", "add", addr, "dev", "underlay");
      await ip("-n", n, "link", "set", "underlay", "up");
    }
  });

  afterEach(async () => {
    await procs?.killAll();
    await fx?.cleanup();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("connects a client on node 1 to an endpoint on node 2 through VXLAN; ping, MTU, close", async () => {
    const registryUrl = "tcp://198.51.100.1:5002";
    const socket = (n: number): string => `unix://${join(dir, `nsm-${n}.sock`)}`;
    const startNode = (n: 1 | 2): Promise<unknown> => {
      const where = n === 1 ? ns.n1 : ns.n2;
      const tunnelIp = `198.51.100.${n}`;
      return Promise.all([
        procs.start(
          "cmd-nsmgr",
          {
            NSM_NAME: `nsmgr-${n}`,
            NODE_NAME: `node-${n}`,
            NSM_LISTEN_ON: `${socket(n)},tcp://${tunnelIp}:5001`,
            NSM_REGISTRY_URL: registryUrl,
          },
          "cmd-nsmgr serving",
          `nsmgr-${n}`,
          where,
        ),
        procs.start(
          "cmd-forwarder",
          {
            NSM_NAME: `forwarder-${n}`,
            NSM_CONNECT_TO: socket(n),
            NSM_LISTEN_ON: `unix://${join(dir, `forwarder-${n}.sock`)}`,
            NSM_FORWARDER_MECHANISM: "KERNEL",
            NSM_TUNNEL_IP: tunnelIp,
          },
          "cmd-forwarder serving",
          `forwarder-${n}`,
          where,
        ),
      ]);
    };
    await Promise.all([
      procs.start("cmd-registry", { NSM_NAME: "registry", NSM_LISTEN_ON: registryUrl }, "cmd-registry serving", "registry", ns.n1),
      startNode(1),
      startNode(2),
    ]);
    await procs.start(
      "cmd-endpoint",
      {
        NSM_NAME: "nse-remote",
        NSM_CONNECT_TO: socket(2),
        NSM_LISTEN_ON: `unix://${join(dir, "nse.sock")}`,
        NSM_SERVICE_NAMES: SERVICE,
        NSM_CIDR_PREFIX: "169.254.80.0/24",
      },
      "cmd-endpoint serving",
      "nse-remote",
      ns.b,
    );
    const nsc = procs.spawn(
      "cmd-nsc",
      { NSM_NAME: "nsc-1", NSM_CONNECT_TO: socket(1), NSM_NETWORK_SERVICES: `kernel://${SERVICE}/${IFNAME}`, NODE_NAME: "node-1" },
      "nsc-1",
      ns.a,
    );
    const conn = (await nsc.waitFor("connected", () => true, 60_000)).connection as ConnSummary;
    // Both nsmgrs and both forwarders on the path: the connection really crossed nodes.
    const names = conn.path.map((s) => s.name);
    expect(names, names.join(" > ")).to.include.members(["nsmgr-1", "forwarder-1", "nsmgr-2", "forwarder-2", "nse-remote"]);

    const clientIf = (await links(ns.a)).find((l) => l.ifname === IFNAME);
    expect(clientIf, `interface ${IFNAME} in the client pod`).to.not.equal(undefined);
    expect(clientIf?.addr_info.map((a) => `${a.local}/${a.prefixlen}`)).to.include(conn.srcIpAddrs[0]);
    expect(clientIf?.mtu, "client MTU = underlay MTU − VXLAN overhead").to.equal(UNDERLAY_MTU - VXLAN_OVERHEAD);
    const vxlans = async (n: string): Promise<number> => {
      const r = (await links(n)).filter((l) => l.ifname !== "underlay");
      return r.length;
    };
    expect(await vxlans(ns.n1), "node 1 holds the tunnel side of the connection").to.be.greaterThan(0);
    expect(await vxlans(ns.n2), "node 2 holds the tunnel side of the connection").to.be.greaterThan(0);

    const dst = bare(conn.dstIpAddrs[0] ?? "");
    await waitUntil(`ping ${dst} across the underlay`, async () => ((await pingFrom(ns.a, dst)) ? true : undefined), 20_000).catch(
      (err: Error) => {
        throw new Error(`${err.message}\n${procs.all.map((p) => `--- ${p.name}\n${p.output()}`).join("\n")}`);
      },
    );

    const { code } = await nsc.stop("SIGTERM");
    expect(code, nsc.output()).to.equal(0);
    const onlyUnderlay = async (): Promise<true | undefined> =>
      (await links(ns.a)).length === 0 && (await links(ns.b)).length === 0 && (await vxlans(ns.n1)) === 0 && (await vxlans(ns.n2)) === 0
        ? true
        : undefined;
    await waitUntil("everything but the underlay removed on both nodes and pods", onlyUnderlay, 20_000).catch(async (err: Error) => {
      throw new Error(
        `${err.message}: n1 ${JSON.stringify((await links(ns.n1)).map((l) => l.ifname))} n2 ${JSON.stringify((await links(ns.n2)).map((l) => l.ifname))}`,
      );
    });
  });
});
