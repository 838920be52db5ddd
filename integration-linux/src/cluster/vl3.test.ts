/**
 * Issue 14 acceptance, vL3 across two nodes: node netns 1 and 2 joined by a veth underlay (198.51.100.1/24 ↔
 * .2/24), each running cmd-nsmgr and a KERNEL cmd-forwarder; cmd-registry in node 1 serves the prefix pool
 * 169.254.0.0/16 (/24 each). One cmd-nse-vl3 per node, each in its own pod netns; three client pods (two on node 1,
 * one on node 2) join the vL3 network with cmd-nsc. Every client pings every other by its vL3 address (across the
 * VXLAN leg between the endpoints for the pairs on different nodes) and resolves the members on the other node by
 * name (`getent hosts nsc-c3.vl3-it.` in c1's netns: cmd-nsc's forwarder → its endpoint's member-name server → the
 * peer endpoint's); after the clients and endpoints stop, no link, route, rule, loopback address, DNS listener or
 * resolver change of ours is left, and the namespaces go with the fixture.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runCommand } from "@nsm-ts/sdk-linux";
import { expect } from "chai";
import { KernelFixture, skipUnlessKernel } from "../kernel/fixture.js";
import type { Program } from "../programs/harness.js";
import { bare, links, Processes, pingFrom, roleNamespaces, startKernelNode, underlay, waitUntil } from "./cluster.js";

const SERVICE = "vl3-it";
const POOL = "169.254.0.0/16";
const ROLES = ["n1", "n2", "e1", "e2", "c1", "c2", "c3"] as const;
type Role = (typeof ROLES)[number];
/** Start-up allowance per program: seven node processes start at once on a shared 2-core machine. */
const START_MS = 90_000;
const RESOLV = "# the test's resolver config for this netns\nnameserver 203.0.113.53\n";

/** `getent hosts name` inside netns `ns` (glibc reads /etc/netns/<ns>/resolv.conf through `ip netns exec`). */
async function getent(ns: string, name: string): Promise<string | undefined> {
  const r = await runCommand(["ip", "netns", "exec", ns, "getent", "hosts", name]);
  return r.code === 0 ? r.stdout.trim() : undefined;
}

/** `ip -j <what> show` in `ns` as parsed JSON (routes, rules), or [] when empty. */
async function ipJson(ns: string, ...what: string[]): Promise<Array<Record<string, unknown>>> {
  const r = await runCommand(["ip", "-n", ns, "-j", ...what, "show"]);
  if (r.code !== 0) throw new Error(`ip -n ${ns} ${what.join(" ")}: ${r.stderr}`);
  return JSON.parse(r.stdout || "[]") as Array<Record<string, unknown>>;
}

describe("cluster: a vL3 network over two nodes, KERNEL data plane, real programs", function () {
  this.timeout(240_000);
  let fx: KernelFixture;
  let procs: Processes;
  let dir: string;
  let etcDirs: string[] = [];
  const ns = {} as Record<Role, string>;

  before(async function () {
    await skipUnlessKernel(this);
  });

  beforeEach(async () => {
    fx = new KernelFixture();
    procs = new Processes();
    dir = mkdtempSync(join(tmpdir(), "nsm-vl3-"));
    Object.assign(ns, await roleNamespaces(fx, ROLES));
    await underlay(ns.n1, ns.n2);
  });

  afterEach(async () => {
    await procs?.killAll();
    await fx?.cleanup();
    if (dir) rmSync(dir, { recursive: true, force: true });
    for (const d of etcDirs) rmSync(d, { recursive: true, force: true });
    etcDirs = [];
  });

  it("3 clients on 2 nodes ping each other by vL3 address; nothing of ours is left after Close and shutdown", async () => {
    const sock = (name: string): string => `unix://${join(dir, `${name}.sock`)}`;
    const registryUrl = "tcp://198.51.100.1:5002";
    const startNode = (n: 1 | 2): Promise<void> =>
      startKernelNode(procs, { n, netns: n === 1 ? ns.n1 : ns.n2, sock, registryUrl, startMs: START_MS });
    // The registry serves the prefix pool on tcp (the nsmgrs) and on a unix socket (the endpoints' pods have no
    // route to the underlay).
    await Promise.all([
      procs.start(
        "cmd-registry",
        {
          NSM_NAME: "registry",
          NSM_LISTEN_ON: `${registryUrl},${sock("registry")}`,
          NSM_IPAM_PREFIX_POOL: POOL,
          NSM_IPAM_PREFIX_LENGTH: "24",
        },
        "cmd-registry serving",
        "registry",
        ns.n1,
        START_MS,
      ),
      startNode(1),
      startNode(2),
    ]);
    const endpoint = (n: 1 | 2): Promise<Program> =>
      procs.start(
        "cmd-nse-vl3",
        {
          NSM_NAME: `vl3-${n}`,
          NSM_CONNECT_TO: sock(`nsm-${n}`),
          NSM_LISTEN_ON: sock(`vl3-${n}`),
          NSM_SERVICE_NAMES: SERVICE,
          NSM_PREFIX_SERVER_URL: sock("registry"),
          NSM_VL3_PREFIX: POOL,
        },
        "cmd-nse-vl3 serving",
        `vl3-${n}`,
        n === 1 ? ns.e1 : ns.e2,
        START_MS,
      );
    const readForwarding = async (): Promise<string> =>
      (await runCommand(["ip", "netns", "exec", ns.e1, "cat", "/proc/sys/net/ipv4/ip_forward"])).stdout.trim();
    const forwardingBefore = await readForwarding();
    const [e1, e2] = await Promise.all([endpoint(1), endpoint(2)]);
    // vl3-2 sorts after vl3-1, so it connects to vl3-1 (across the nodes).
    const peer = await e2.waitFor("vl3: connected to peer", (r) => r.peer === "vl3-1", 60_000);
    expect(peer.connId).to.be.a("string");
    expect(await readForwarding(), "IP forwarding on in the endpoint's netns").to.equal("1");
    // No client link carries an endpoint's own address yet: its member-name server's address went on loopback.
    for (const e of [e1, e2]) expect((await e.waitFor("dns: serving member names", () => true, 10_000)).loopback).to.equal(true);

    const clients: Array<{ role: Role; node: 1 | 2 }> = [
      { role: "c1", node: 1 },
      { role: "c2", node: 1 },
      { role: "c3", node: 2 },
    ];
    // Each client pod gets its own resolver config, which `ip netns exec` bind-mounts and cmd-nsc rewrites.
    for (const { role } of clients) {
      const etc = join("/etc/netns", ns[role]);
      expect(existsSync(etc), `${etc} exists before the test`).to.equal(false);
      mkdirSync(etc, { recursive: true });
      etcDirs.push(etc);
      writeFileSync(join(etc, "resolv.conf"), RESOLV);
    }
    const nscs = clients.map(({ role, node }) =>
      procs.spawn(
        "cmd-nsc",
        {
          NSM_NAME: `nsc-${role}`,
          NSM_CONNECT_TO: sock(`nsm-${node}`),
          NSM_NETWORK_SERVICES: `kernel://${SERVICE}/nsm-1`,
          NODE_NAME: `node-${node}`,
        },
        `nsc-${role}`,
        ns[role],
      ),
    );
    const addrs: string[] = [];
    for (const nsc of nscs) {
      const conn = (await nsc.waitFor("connected", () => true, 60_000)).connection as {
        srcIpAddrs: string[];
        path: Array<{ name: string }>;
      };
      addrs.push(bare(conn.srcIpAddrs[0] ?? ""));
    }
    expect(new Set(addrs).size, addrs.join(" ")).to.equal(3);
    for (const a of addrs) expect(a).to.match(/^169\.254\.\d+\.\d+$/);

    const diagnose = async (err: Error): Promise<never> => {
      const state = await Promise.all(
        ROLES.map(
          async (r) => `--- ${r}: ${JSON.stringify((await ipJson(ns[r], "route")).map((x) => `${x.dst} ${x.gateway ?? ""} ${x.dev}`))}`,
        ),
      );
      throw new Error(`${err.message}\n${state.join("\n")}\n${procs.all.map((p) => `--- ${p.name}\n${p.output()}`).join("\n")}`);
    };
    for (const [i, { role }] of clients.entries()) {
      for (const [j, dst] of addrs.entries()) {
        if (i === j) continue;
        await waitUntil(`${role} pings ${dst}`, async () => ((await pingFrom(ns[role], dst)) ? true : undefined), 30_000).catch(diagnose);
      }
    }

    // Names across the nodes: c1 and c2 (node 1) resolve c3 (node 2) and c3 resolves c1, through each client's
    // forwarder, its endpoint's member-name server and the peer endpoint's.
    for (const nsc of nscs) await nsc.waitFor("dns: forwarder serving the connections' DNS configs", () => true, 30_000);
    const byName = (i: number, from: number): Promise<string | undefined> =>
      waitUntil(
        `${clients[from]?.role} resolves nsc-${clients[i]?.role}.${SERVICE}.`,
        () => getent(ns[clients[from]?.role ?? "c1"], `nsc-${clients[i]?.role}.${SERVICE}.`),
        15_000,
      ).catch(diagnose);
    for (const [i, from] of [
      [2, 0],
      [2, 1],
      [0, 2],
    ] as const) {
      expect(await byName(i, from)).to.match(
        new RegExp(`^${(addrs[i] ?? "").replaceAll(".", "\\.")}\\s+nsc-${clients[i]?.role}\\.${SERVICE}\\.?$`),
      );
    }

    // Close: the clients leave, then the endpoints (closing their peer connection, giving their prefixes back).
    for (const nsc of nscs) expect((await nsc.stop("SIGTERM")).code, nsc.output()).to.equal(0);
    for (const e of [e2, e1]) expect((await e.stop("SIGTERM")).code, e.output()).to.equal(0);
    const pods: Role[] = ["e1", "e2", "c1", "c2", "c3"];
    const clean = async (): Promise<true | undefined> => {
      for (const r of pods) if ((await links(ns[r])).length > 0 || (await ipJson(ns[r], "route")).length > 0) return undefined;
      for (const n of [ns.n1, ns.n2]) if ((await links(n)).some((l) => l.ifname !== "underlay")) return undefined;
      return true;
    };
    await waitUntil("no link or route of ours left in the pods and nodes", clean, 20_000).catch(diagnose);
    for (const r of ROLES) {
      const rules = (await ipJson(ns[r], "rule")).map((x) => x.table);
      expect(rules, `rules in ${r}`).to.deep.equal(["local", "main", "default"]);
    }
    expect(await readForwarding(), "IP forwarding put back").to.equal(forwardingBefore);
    for (const d of etcDirs) expect(readFileSync(join(d, "resolv.conf"), "utf8"), `${d}/resolv.conf restored`).to.equal(RESOLV);
    for (const r of pods) {
      const out = (await runCommand(["ip", "-n", ns[r], "-j", "addr", "show", "dev", "lo"])).stdout;
      const lo = JSON.parse(out || "[]") as Array<{ addr_info?: Array<{ local: string }> }>;
      const extra = (lo[0]?.addr_info ?? []).map((a) => a.local).filter((a) => a !== "127.0.0.1" && a !== "::1");
      expect(extra, `loopback addresses left in ${r}`).to.deep.equal([]);
      const dns = await runCommand(["ip", "netns", "exec", ns[r], "ss", "-Hlnu", "sport", "=", ":53"]);
      expect(dns.stdout.trim(), `DNS listener left in ${r}`).to.equal("");
    }
    // The namespaces go in afterEach: the fixture's cleanup fails the test if any of them is left.
  });
});
