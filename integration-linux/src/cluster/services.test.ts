/**
 * Issue 15 acceptance, services over two nodes with real programs: node netns 1 and 2 joined by a veth underlay,
 * each with cmd-nsmgr and a KERNEL cmd-forwarder that follows the services API (NSM_SERVICES_URL); cmd-registry
 * serves the vL3 prefix pool and the services API with a ServiceIP range per policy. One cmd-nse-vl3 per node;
 * three pods join the vL3 network with cmd-nsc: the client (node 1) and a backend on each node, each backend
 * running a small TCP server that answers its own name. The backends' sidecars register them (NSM_SERVICE_BACKENDS:
 * their vL3 address, source api) and probe the server, writing its health; the forwarders put the ServiceIP rules
 * into every client namespace they serve. A SIGKILLed server is found by its sidecar's probe, nothing else; a
 * SIGKILLed pod (sidecar included) leaves when its rows' lease runs out.
 */
import type { ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { NodeManager, NodeState } from "@nsm-ts/api/resources";
import { BackendHealth, BalancingPolicy, ReconcileState } from "@nsm-ts/api/services";
import { createClient, dial } from "@nsm-ts/base/grpc";
import { nft, openNetns } from "@nsm-ts/sdk-linux";
import { servicesClient } from "@nsm-ts/services";
import { expect } from "chai";
import { KernelFixture, skipUnlessKernel } from "../kernel/fixture.js";
import { connectMany, startConnectLoop, startNameServer, type TimedReach, tally } from "../kernel/services.fixture.js";
import { bare, Processes, roleNamespaces, startKernelNode, underlay, waitUntil } from "./cluster.js";

const SERVICE = "vl3-svc";
const ROLES = ["n1", "n2", "e1", "e2", "c1", "b1", "b2"] as const;
type Role = (typeof ROLES)[number];
const START_MS = 90_000;
/** The backends' sidecars' lease (NSM_SERVICE_LEASE): a SIGKILLed pod's rows go after it. */
const LEASE_MS = 2000;

describe("cluster: services over two nodes (ServiceIPs as nftables rules in the client pods), real programs", function () {
  this.timeout(300_000);
  let fx: KernelFixture;
  let procs: Processes;
  let dir: string;
  let servers: ChildProcess[] = [];
  const ns = {} as Record<Role, string>;

  before(async function () {
    await skipUnlessKernel(this);
    const { runCommand } = await import("@nsm-ts/sdk-linux");
    if ((await runCommand(["nft", "--version"]).catch(() => undefined))?.code !== 0) {
      process.stderr.write("      skipping services cluster test: nft is not installed (apt-get install nftables)\n");
      this.skip();
    }
  });

  beforeEach(async () => {
    fx = new KernelFixture();
    procs = new Processes();
    dir = mkdtempSync(join(tmpdir(), "nsm-svc-"));
    Object.assign(ns, await roleNamespaces(fx, ROLES));
    await underlay(ns.n1, ns.n2);
  });

  afterEach(async () => {
    for (const s of servers) if (s.exitCode === null && s.signalCode === null) s.kill("SIGKILL");
    servers = [];
    await procs?.killAll();
    await fx?.cleanup();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("round robin reaches both nodes, closest stays on node 1, SIGKILL fails over within 1 s, local redirect, a killed pod leaves with its lease, nothing left", async () => {
    const sock = (name: string): string => `unix://${join(dir, `${name}.sock`)}`;
    const registryUrl = "tcp://198.51.100.1:5002";
    const node = (n: 1 | 2): Promise<void> =>
      startKernelNode(procs, {
        n,
        netns: n === 1 ? ns.n1 : ns.n2,
        sock,
        registryUrl,
        startMs: START_MS,
        forwarderEnv: { NSM_SERVICES_URL: registryUrl, NSM_RESOURCES_URL: registryUrl, NODE_NAME: `node-${n}`, NSM_ZONE: "zone-a" },
      });
    await Promise.all([
      procs.start(
        "cmd-registry",
        {
          NSM_NAME: "registry",
          NSM_LISTEN_ON: `${registryUrl},${sock("registry")}`,
          // Member prefixes from the lower half; ServiceIPs from 169.254.250.0/24, inside the routed vL3 prefix.
          NSM_IPAM_PREFIX_POOL: "169.254.0.0/17",
          NSM_IPAM_PREFIX_LENGTH: "24",
          NSM_SERVICES_ROUND_ROBIN_RANGE: "169.254.250.0/26",
          NSM_SERVICES_CLOSEST_RANGE: "169.254.250.64/26",
          NSM_SERVICES_CONSISTENT_HASH_RANGE: "169.254.250.128/26",
        },
        "cmd-registry serving",
        "registry",
        ns.n1,
        START_MS,
      ),
      node(1),
      node(2),
    ]);
    await Promise.all(
      ([1, 2] as const).map((n) =>
        procs.start(
          "cmd-nse-vl3",
          {
            NSM_NAME: `vl3-${n}`,
            NSM_CONNECT_TO: sock(`nsm-${n}`),
            NSM_LISTEN_ON: sock(`vl3-${n}`),
            NSM_SERVICE_NAMES: SERVICE,
            NSM_PREFIX_SERVER_URL: sock("registry"),
            NSM_VL3_PREFIX: "169.254.0.0/16",
          },
          "cmd-nse-vl3 serving",
          `vl3-${n}`,
          n === 1 ? ns.e1 : ns.e2,
          START_MS,
        ),
      ),
    );
    const pods: Array<{ role: Role; node: 1 | 2 }> = [
      { role: "c1", node: 1 },
      { role: "b1", node: 1 },
      { role: "b2", node: 2 },
    ];
    const nscs = pods.map(({ role, node: n }) =>
      procs.spawn(
        "cmd-nsc",
        {
          NSM_NAME: `nsc-${role}`,
          NSM_CONNECT_TO: sock(`nsm-${n}`),
          NSM_NETWORK_SERVICES: `kernel://${SERVICE}/nsm-1`,
          NODE_NAME: `node-${n}`,
          NSM_ZONE: "zone-a",
          // The backends' sidecars: register the pod as a backend of "names" and probe its server every 100 ms.
          ...(role === "c1"
            ? {}
            : {
                NSM_SERVICE_BACKENDS: "names:8080",
                NSM_SERVICES_URL: sock("registry"),
                NSM_SERVICE_PROBE_INTERVAL: "100ms",
                NSM_SERVICE_PROBE_TIMEOUT: "100ms",
                NSM_SERVICE_PROBE_FAILURES: "2",
                NSM_SERVICE_LEASE: `${LEASE_MS}ms`,
              }),
        },
        `nsc-${role}`,
        ns[role],
      ),
    );
    const addr: Partial<Record<Role, string>> = {};
    for (const [i, nsc] of nscs.entries()) {
      const conn = (await nsc.waitFor("connected", () => true, 60_000)).connection as { srcIpAddrs: string[] };
      addr[(pods[i] as { role: Role }).role] = bare(conn.srcIpAddrs[0] ?? "");
    }
    const [client, b1, b2] = await Promise.all([openNetns(ns.c1), openNetns(ns.b1), openNetns(ns.b2)]);
    servers = [await startNameServer(b1, "backend-1", addr.b1 ?? "", 8080), await startNameServer(b2, "backend-2", addr.b2 ?? "", 8080)];

    const channel = dial(sock("registry"));
    try {
      const api = servicesClient(channel);
      // The forwarders also follow the resource managers (NSM_RESOURCES_URL): each registers its node and beats.
      const nodes = createClient(NodeManager, channel);
      const inService = await waitUntil("both forwarders registered their node, in service", async () => {
        const items = (await nodes.listNodes({})).items.filter((x) => x.state === NodeState.IN_SERVICE);
        return items.length === 2 ? items : undefined;
      });
      expect(inService.map((x) => [x.id, x.tunnelIp, x.labels["topology.kubernetes.io/zone"]]).sort()).to.deep.equal([
        ["node-1", "198.51.100.1", "zone-a"],
        ["node-2", "198.51.100.2", "zone-a"],
      ]);
      await api.services.createService({ name: "names", ports: [{ port: 80 }] });
      const fe = async (policy: BalancingPolicy): Promise<string> =>
        (await api.frontends.createFrontend({ service: "names", policy })).address;
      const rrIp = await fe(BalancingPolicy.ROUND_ROBIN);
      const closestIp = await fe(BalancingPolicy.CLOSEST);
      const hashIp = await fe(BalancingPolicy.CONSISTENT_HASH);
      // Registered by the sidecars (UNHEALTHY until their first probe reaches the server), not by the test.
      await waitUntil("both sidecars registered their backend HEALTHY", async () => {
        const items = (await api.backends.listBackends({ service: "names" })).items;
        const got = items.map((b) => `${b.name}@${b.address}/${b.node}/${b.zone}/${b.health}`).sort();
        const want = [
          `nsc-b1@${addr.b1}/node-1/zone-a/${BackendHealth.HEALTHY}`,
          `nsc-b2@${addr.b2}/node-2/zone-a/${BackendHealth.HEALTHY}`,
        ];
        return JSON.stringify(got) === JSON.stringify(want) ? true : undefined;
      });
      const reconciledOn = (nodes: string[]) => async (): Promise<true | undefined> => {
        const items = (await api.dataPlane.listReconcileStatus({ service: "names" })).items;
        const revision = (await api.dataPlane.listResolvedServices({ node: "node-1", service: "names" })).items[0]?.revision;
        const ok = nodes.every((n) => items.some((s) => s.node === n && s.state === ReconcileState.RECONCILED && s.revision === revision));
        return ok ? true : undefined;
      };
      await waitUntil("both nodes report the service reconciled", reconciledOn(["node-1", "node-2"]), 30_000);
      // The first connections wait for the rules in the client's namespace (its forwarder's report says so).
      await waitUntil("the client reaches a backend through the ServiceIP", async () => {
        const r = await connectMany(client, rrIp, 80, 1, 1000);
        return r[0]?.who.startsWith("backend-") ? true : undefined;
      });

      const rr = tally(await connectMany(client, rrIp, 80, 100));
      expect(rr["backend-1"], JSON.stringify(rr)).to.be.at.least(30);
      expect(rr["backend-2"], JSON.stringify(rr)).to.be.at.least(30);
      expect(tally(await connectMany(client, closestIp, 80, 20))).to.deep.equal({ "backend-1": 20 });
      const hashed = tally(await connectMany(client, hashIp, 80, 20));
      expect((hashed["backend-1"] ?? 0) + (hashed["backend-2"] ?? 0), JSON.stringify(hashed)).to.equal(20);

      // Local redirect: node 1 gets its local instance only while the override exists.
      await api.localRedirects.createLocalRedirect({ service: "names" });
      await waitUntil("node 1 reconciled the local redirect", reconciledOn(["node-1"]), 30_000);
      expect(tally(await connectMany(client, rrIp, 80, 20))).to.deep.equal({ "backend-1": 20 });
      await api.localRedirects.deleteLocalRedirect({ service: "names" });
      await waitUntil("node 1 reconciled the removal", reconciledOn(["node-1"]), 30_000);
      const back = tally(await connectMany(client, rrIp, 80, 20));
      expect(back, JSON.stringify(back)).to.deep.equal({ "backend-1": 10, "backend-2": 10 });

      // SIGKILL of backend 2's server, nothing else: its sidecar's probe finds it down (2 failed probes, 100 ms
      // apart) and writes UNHEALTHY. One long-lived client in the client pod opens a new connection every 10 ms
      // and stamps each (no process start inside the measurement); the failover time is when the first
      // connection after the last one that missed the survivor was opened, relative to the kill.
      const failoverAfter = async (kill: () => Promise<void>, withinMs: number): Promise<{ failover: number; missed: TimedReach[] }> => {
        const loop = await startConnectLoop(client, rrIp, 80, 10, 300);
        try {
          await loop.until((rs) => rs.filter((x) => x.who === "backend-2").length >= 2, 10_000);
          const t0 = Date.now();
          await kill();
          const after = (rs: readonly TimedReach[]): TimedReach[] => rs.filter((x) => x.at >= t0);
          const streak = (rs: readonly TimedReach[]): number => {
            let n = 0;
            for (const x of after(rs)) n = x.who === "backend-1" ? n + 1 : 0;
            return n;
          };
          await loop
            .until((rs) => streak(rs) >= 50, withinMs + 4000)
            .catch((err: Error) => {
              throw new Error(`${err.message}: ${JSON.stringify(tally(after(loop.results)))}`);
            });
          const since = after(loop.results);
          const firstGood = since[since.length - streak(loop.results)] as TimedReach;
          return { failover: firstGood.at - t0, missed: since.filter((x) => x.who !== "backend-1") };
        } finally {
          await loop.stop();
        }
      };
      const { failover, missed } = await failoverAfter(async () => void (servers[1] as ChildProcess).kill("SIGKILL"), 1000);
      expect(failover, `survivor only after ${failover} ms`).to.be.below(1000);
      expect(tally(await connectMany(client, rrIp, 80, 30))).to.deep.equal({ "backend-1": 30 });
      process.stderr.write(
        `      SIGKILL → every new connection on the survivor after ${failover} ms (${missed.length} missed before: ${JSON.stringify(tally(missed))})\n`,
      );

      // The whole pod of backend 2 SIGKILLed, sidecar included: nothing writes UNHEALTHY or deletes the row; its
      // lease runs out and the model deletes it, which the forwarders reconcile like any delete.
      servers[1] = await startNameServer(b2, "backend-2", addr.b2 ?? "", 8080);
      await waitUntil("the client reaches backend 2 again", async () =>
        (await connectMany(client, rrIp, 80, 10)).some((r) => r.who === "backend-2") ? true : undefined,
      );
      const pod = await failoverAfter(async () => {
        (servers[1] as ChildProcess).kill("SIGKILL");
        await (nscs[2] as (typeof nscs)[number]).stop("SIGKILL");
      }, LEASE_MS + 1000);
      expect(pod.failover, `survivor only after ${pod.failover} ms`).to.be.below(LEASE_MS + 1000);
      expect((await api.backends.listBackends({ service: "names" })).items.map((b) => b.name)).to.deep.equal(["nsc-b1"]);
      process.stderr.write(
        `      SIGKILL of the pod (lease ${LEASE_MS} ms) → every new connection on the survivor after ${pod.failover} ms (${pod.missed.length} missed before)\n`,
      );
    } finally {
      channel.close();
    }

    // Teardown: the live pods close (their forwarders detach them; the sidecars delete their backends), then
    // everything stops; no table of ours remains (backend 2's, killed, goes when its forwarder stops).
    for (const nsc of nscs.slice(0, 2)) expect((await nsc.stop("SIGTERM")).code, nsc.output()).to.equal(0);
    const after = dial(sock("registry"));
    try {
      expect((await servicesClient(after).backends.listBackends({ service: "names" })).items).to.deep.equal([]);
    } finally {
      after.close();
    }
    const inPods = ["c1", "b1"].map((r) => `/run/netns/${ns[r as Role]}`);
    let left: nft.NftTableIn[] = [];
    await waitUntil("no service table left in the pods after they closed", async () => {
      left = await nft.findNftLeftovers({ namespaces: inPods });
      return left.length === 0 ? true : undefined;
    }).catch((err: Error) => {
      throw new Error(`${err.message}: ${JSON.stringify(left)}\n${procs.all.map((p) => `--- ${p.name}\n${p.output()}`).join("\n")}`);
    });
    // The endpoints' peer connection is a KERNEL client too; then the forwarders clean up whatever is left.
    for (const p of [...procs.all].reverse()) await p.stop("SIGTERM");
    expect(await nft.findNftLeftovers({ namespaces: ROLES.map((r) => `/run/netns/${ns[r]}`) })).to.deep.equal([]);
  });
});
