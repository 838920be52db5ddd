/**
 * Interdomain acceptance: two clusters, each a node netns (cluster A: 198.51.100.1, cluster B: 198.51.100.2 on a
 * veth underlay) running its own cmd-registry, cmd-registry in proxy-dns mode, cmd-nsmgr-proxy, cmd-nsmgr and a
 * KERNEL cmd-forwarder; a DNS server in its own netns (reached from both nodes) answers SRV and A for both
 * domains. A client pod of cluster A asks for `svc@b.test`: the connection takes both nsmgr-proxies (eight path
 * segments), the data plane is a VXLAN between the two nodes' forwarders (MTU = underlay − 50), ping works, it
 * heals after the endpoint is killed and restarted, and closing leaves nothing behind.
 */
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect } from "chai";
import { KernelFixture, skipUnlessKernel } from "../kernel/fixture.js";
import { Program } from "../programs/harness.js";
import { bare, ip, links, Processes, pingFrom, roleNamespaces, waitUntil } from "./cluster.js";
import { DOMAINS_DNS_SCRIPT } from "./domains-dns.fixture.js";

const SERVICE = "icmp-interdomain";
const IFNAME = "nsm-1";
const UNDERLAY_MTU = 1400;
const VXLAN_OVERHEAD = 50;
const DOMAINS = { a: { node: "198.51.100.1", dns: "169.254.53.1" }, b: { node: "198.51.100.2", dns: "169.254.54.1" } } as const;
/** Ten programs start at once on a shared 2-core machine: a start may take long. */
const START_MS = 90_000;
const DNS_AT = { a: "169.254.53.2", b: "169.254.54.2" } as const;

interface ConnSummary {
  srcIpAddrs: string[];
  dstIpAddrs: string[];
  path: Array<{ name: string }>;
}

describe("cluster: two domains (svc@domain), nsmgr-proxies, DNS, KERNEL VXLAN between the clusters", function () {
  this.timeout(240_000);
  let fx: KernelFixture;
  let procs: Processes;
  let dir: string;
  const ns: Record<"a" | "b" | "dns" | "pa" | "pb", string> = { a: "", b: "", dns: "", pa: "", pb: "" };

  before(async function () {
    await skipUnlessKernel(this);
  });

  beforeEach(async () => {
    fx = new KernelFixture();
    procs = new Processes();
    dir = mkdtempSync(join(tmpdir(), "nsm-idom-"));
    Object.assign(ns, await roleNamespaces(fx, ["a", "b", "dns", "pa", "pb"] as const));
    // The underlay between the two clusters' nodes.
    await ip("-n", ns.a, "link", "add", "underlay", "mtu", String(UNDERLAY_MTU), "type", "veth", "peer", "name", "underlay", "netns", ns.b);
    await ip("-n", ns.b, "link", "set", "underlay", "mtu", String(UNDERLAY_MTU));
    for (const d of ["a", "b"] as const) {
      await ip("-n", ns[d], "addr", "add", `${DOMAINS[d].node}/24`, "dev", "underlay");
      await ip("-n", ns[d], "link", "set", "underlay", "up");
      // Each node reaches the DNS namespace over its own link.
      await ip("-n", ns[d], "link", "add", "dns", "type", "veth", "peer", "name", `to-${d}`, "netns", ns.dns);
      await ip("-n", ns[d], "addr", "add", `${DOMAINS[d].dns}/30`, "dev", "dns");
      await ip("-n", ns[d], "link", "set", "dns", "up");
      await ip("-n", ns.dns, "addr", "add", `${DNS_AT[d]}/30`, "dev", `to-${d}`);
      await ip("-n", ns.dns, "link", "set", `to-${d}`, "up");
    }
  });

  afterEach(async () => {
    await procs?.killAll();
    await fx?.cleanup();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("a client of A pings an endpoint of B asked for as svc@b.test; heals after the endpoint restarts; close leaves nothing", async () => {
    const records = (["a", "b"] as const).flatMap((d) => [
      `registry.nsm-system.${d}.test=tcp://${DOMAINS[d].node}:5002`,
      `nsmgr-proxy.nsm-system.${d}.test=tcp://${DOMAINS[d].node}:5004`,
    ]);
    const dnsChild = spawn("ip", ["netns", "exec", ns.dns, process.execPath, DOMAINS_DNS_SCRIPT, "0.0.0.0:53", ...records], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    const dns = new Program("dns", dnsChild);
    procs.all.push(dns);
    await dns.waitFor("domains dns serving", () => true, START_MS);

    const socket = (d: string): string => `unix://${join(dir, `nsm-${d}.sock`)}`;
    const cluster = async (d: "a" | "b"): Promise<void> => {
      const node = DOMAINS[d].node;
      const where = ns[d];
      await Promise.all([
        procs.start(
          "cmd-registry",
          {
            NSM_NAME: `registry-${d}`,
            NSM_LISTEN_ON: `tcp://${node}:5002`,
            NSM_PROXY_REGISTRY_URL: `tcp://${node}:5004`,
            NSM_REGISTRARS: "spiffe://*/nsmgr*,spiffe://*/registry-proxy*",
          },
          "cmd-registry serving",
          `registry-${d}`,
          where,
          START_MS,
        ),
        procs.start(
          "cmd-registry",
          {
            NSM_NAME: `registry-proxy-dns-${d}`,
            NSM_REGISTRY_MODE: "proxy-dns",
            NSM_LISTEN_ON: `tcp://${node}:5003`,
            NSM_DNS_SERVERS: DNS_AT[d],
          },
          "cmd-registry serving",
          `registry-proxy-dns-${d}`,
          where,
          START_MS,
        ),
        procs.start(
          "cmd-nsmgr-proxy",
          {
            NSM_NAME: `nsmgr-proxy-${d}`,
            NSM_LISTEN_ON: `tcp://${node}:5004`,
            NSM_REGISTRY_URL: `tcp://${node}:5002`,
            NSM_REGISTRY_PROXY_URL: `tcp://${node}:5003`,
            NSM_MAP_IP_FILE_PATH: join(dir, `map-ip-${d}.yaml`),
          },
          "cmd-nsmgr-proxy serving",
          `nsmgr-proxy-${d}`,
          where,
          START_MS,
        ),
        procs.start(
          "cmd-nsmgr",
          {
            NSM_NAME: `nsmgr-${d}`,
            NODE_NAME: `node-${d}`,
            NSM_LISTEN_ON: `${socket(d)},tcp://${node}:5001`,
            NSM_REGISTRY_URL: `tcp://${node}:5002`,
          },
          "cmd-nsmgr serving",
          `nsmgr-${d}`,
          where,
          START_MS,
        ),
      ]);
      await procs.start(
        "cmd-forwarder",
        {
          NSM_NAME: `forwarder-${d}`,
          NSM_CONNECT_TO: socket(d),
          NSM_LISTEN_ON: `unix://${join(dir, `forwarder-${d}.sock`)}`,
          NSM_FORWARDER_MECHANISM: "KERNEL",
          NSM_TUNNEL_IP: node,
        },
        "cmd-forwarder serving",
        `forwarder-${d}`,
        where,
        START_MS,
      );
    };
    await Promise.all([cluster("a"), cluster("b")]);
    const endpointEnv = {
      NSM_NAME: "nse-b",
      NSM_CONNECT_TO: socket("b"),
      NSM_LISTEN_ON: `unix://${join(dir, "nse-b.sock")}`,
      NSM_SERVICE_NAMES: SERVICE,
      NSM_CIDR_PREFIX: "169.254.90.0/24",
    };
    let nse = await procs.start("cmd-endpoint", endpointEnv, "cmd-endpoint serving", "nse-b", ns.pb, START_MS);
    const nsc = procs.spawn(
      "cmd-nsc",
      { NSM_NAME: "nsc-a", NSM_CONNECT_TO: socket("a"), NSM_NETWORK_SERVICES: `kernel://${SERVICE}@b.test/${IFNAME}`, NODE_NAME: "node-a" },
      "nsc-a",
      ns.pa,
    );
    const dump = (): string => procs.all.map((p) => `--- ${p.name}\n${p.output().slice(-3000)}`).join("\n");
    const conn = (
      await nsc
        .waitFor("connected", () => true, 60_000)
        .catch((err: Error) => {
          throw new Error(`${err.message}\n${dump()}`);
        })
    ).connection as ConnSummary;
    const names = conn.path.map((s) => s.name);
    expect(names, names.join(" > ")).to.deep.equal([
      "nsc-a",
      "nsmgr-a",
      "forwarder-a",
      "nsmgr-proxy-a",
      "nsmgr-proxy-b",
      "nsmgr-b",
      "forwarder-b",
      "nse-b",
    ]);

    const clientIf = (await links(ns.pa)).find((l) => l.ifname === IFNAME);
    expect(clientIf?.mtu, "client MTU = underlay MTU − VXLAN overhead").to.equal(UNDERLAY_MTU - VXLAN_OVERHEAD);
    const dst = bare(conn.dstIpAddrs[0] ?? "");
    const pings = (what: string) =>
      waitUntil(what, async () => ((await pingFrom(ns.pa, dst)) ? true : undefined), 30_000).catch((err: Error) => {
        throw new Error(`${err.message}\n${dump()}`);
      });
    await pings(`ping ${dst} in cluster B from cluster A`);

    // Heal: the endpoint dies and comes back (same name and socket, as a restarted pod).
    await nse.stop("SIGKILL");
    nse = await procs.start("cmd-endpoint", endpointEnv, "cmd-endpoint serving", "nse-b-2", ns.pb, START_MS);
    await pings("ping again after the endpoint restarted");

    const { code } = await nsc.stop("SIGTERM");
    expect(code, nsc.output()).to.equal(0);
    const tunnels = async (n: string): Promise<number> =>
      (await links(n)).filter((l) => l.ifname !== "underlay" && l.ifname !== "dns").length;
    await waitUntil(
      "everything but the underlay and DNS links removed on both nodes and pods",
      async () =>
        (await links(ns.pa)).length === 0 && (await links(ns.pb)).length === 0 && (await tunnels(ns.a)) === 0 && (await tunnels(ns.b)) === 0
          ? true
          : undefined,
      20_000,
    ).catch(async (err: Error) => {
      throw new Error(
        `${err.message}: a ${JSON.stringify((await links(ns.a)).map((l) => l.ifname))} b ${JSON.stringify((await links(ns.b)).map((l) => l.ifname))}`,
      );
    });
  });
});
