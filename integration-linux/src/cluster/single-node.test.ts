/**
 * Issue 7 acceptance with the real programs as processes and the KERNEL data plane, on one node: registry, nsmgr
 * and forwarder run inside a "node" netns, the endpoint inside pod netns B, the client inside pod netns A. Checks
 * the client interface and address, ping through it, that a refresh leaves the interfaces alone (same ifindex),
 * that SIGTERM on the client removes both ends, a forwarder SIGKILL + restart (no duplicates, no leftovers), and
 * 50 concurrent client processes. Heal after endpoint SIGKILLs: single-node-heal.test.ts.
 */
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { expect } from "chai";
import type { LogRecord } from "../programs/harness.js";
import { bare, links, pingFrom, waitUntil } from "./cluster.js";
import { connOf, IFNAME, SERVICE, useSingleNode } from "./single-node.fixture.js";

/** How long the killed forwarder stays down: longer than heal's fallback reselect (5 s), as a slow restart is. */
const FORWARDER_DOWN_MS = 8_000;

describe("cluster: single node, KERNEL data plane, real programs", function () {
  this.timeout(180_000);
  const mesh = useSingleNode();
  const { ns, startEndpoint, startClient, startForwarder, linkIn } = mesh;

  it("connects pod A to pod B with a veth pair, pings, survives a refresh untouched, and Close removes both ends", async () => {
    await startEndpoint("nse-1");
    const nsc = startClient({ NSM_MAX_TOKEN_LIFETIME: "30s" });
    const conn = connOf(await nsc.waitFor("connected", () => true, 60_000));
    expect(conn.srcIpAddrs, "client addresses").to.have.length.greaterThan(0);
    expect(conn.dstIpAddrs, "endpoint addresses").to.have.length.greaterThan(0);

    const clientIf = await linkIn(ns.a);
    expect(clientIf, `interface ${IFNAME} in pod A`).to.not.equal(undefined);
    expect(clientIf?.addr_info.map((a) => `${a.local}/${a.prefixlen}`)).to.include(conn.srcIpAddrs[0]);
    const endpointLinks = await links(ns.b);
    expect(endpointLinks, "one interface in pod B").to.have.length(1);
    expect(endpointLinks[0]?.addr_info.map((a) => `${a.local}/${a.prefixlen}`)).to.include(conn.dstIpAddrs[0]);

    const dst = bare(conn.dstIpAddrs[0] ?? "");
    await waitUntil(`ping ${dst} from pod A`, async () => ((await pingFrom(ns.a, dst)) ? true : undefined), 20_000);

    // A refresh (tokens of 30 s → refresh at about a third of that) must leave both ends as they are.
    const before = { a: clientIf?.ifindex, b: endpointLinks[0]?.ifindex };
    const refreshed = connOf(await nsc.waitFor("connection refreshed", () => true, 60_000));
    expect(refreshed.id).to.equal(conn.id);
    expect((await linkIn(ns.a))?.ifindex, "client ifindex after refresh").to.equal(before.a);
    expect(
      (await links(ns.b)).map((l) => l.ifindex),
      "endpoint ifindex after refresh",
    ).to.deep.equal([before.b]);
    expect(await pingFrom(ns.a, dst), "ping after refresh").to.equal(true);

    // SIGTERM: the client closes its connection, and the forwarder removes both ends.
    const { code } = await nsc.stop("SIGTERM");
    expect(code, nsc.output()).to.equal(0);
    await waitUntil(
      "both ends removed",
      async () => ((await links(ns.a)).length === 0 && (await links(ns.b)).length === 0 ? true : undefined),
      20_000,
    );
    expect(await links(ns.node), "nothing left in the node netns").to.deep.equal([]);
  });

  it("connects a client and an endpoint that each run as pid 1 of their own PID namespace, as in pods", async () => {
    // There a /proc/<own pid>/ns/net URL would name the forwarder's init process: the programs send inode URLs.
    const nse = await startEndpoint("nse-1", {}, true);
    const nsc = startClient({}, true);
    const conn = connOf(await nsc.waitFor("connected", () => true, 60_000));
    for (const p of [nse, nsc]) expect(p.records[0]?.pid, `${p.name} runs as pid 1`).to.equal(1);
    expect((await linkIn(ns.a))?.addr_info.map((a) => `${a.local}/${a.prefixlen}`)).to.include(conn.srcIpAddrs[0]);
    expect(await links(ns.b), "one interface in pod B").to.have.length(1);
    expect(
      (await links()).map((l) => l.ifname),
      "nothing in the host netns",
    ).to.not.include(IFNAME);
    const dst = bare(conn.dstIpAddrs[0] ?? "");
    await waitUntil(`ping ${dst} from pod A`, async () => ((await pingFrom(ns.a, dst)) ? true : undefined), 20_000);
  });

  it("after the forwarder is SIGKILLed and restarted 8 s later, no duplicate interfaces and ping works again", async () => {
    await startEndpoint("nse-1");
    const nsc = startClient();
    const conn = connOf(await nsc.waitFor("connected", () => true, 60_000));
    const dst = bare(conn.dstIpAddrs[0] ?? "");
    await waitUntil(`ping ${dst}`, async () => ((await pingFrom(ns.a, dst)) ? true : undefined), 20_000);
    const forwarder = mesh.procs.all.find((p) => p.name === "forwarder-1");
    if (forwarder === undefined) throw new Error("no forwarder");
    const ifindexBefore = (await linkIn(ns.a))?.ifindex;
    const refreshesBefore = nsc.records.filter((r) => r.msg === "connection refreshed").length;

    await forwarder.stop("SIGKILL");
    const killedAt = Date.now();
    // The kernel keeps the veth pair: traffic does not depend on the forwarder process.
    expect(await pingFrom(ns.a, dst), "ping while the forwarder is down").to.equal(true);
    // Down longer than heal's 5 s fallback reselect: the nsmgr answers that no forwarder can be reached, which heal
    // does not count toward it, so the connection keeps its interfaces for the restarted forwarder to adopt.
    await sleep(FORWARDER_DOWN_MS - (Date.now() - killedAt));
    const restarted = await startForwarder();
    // The client notices (monitor stream / failed refresh) and heals through the new forwarder instance.
    await nsc.waitFor(
      "connection refreshed",
      () => nsc.records.filter((r) => r.msg === "connection refreshed").length > refreshesBefore,
      60_000,
    );
    const healed = connOf([...nsc.records].reverse().find((r) => r.msg === "connection refreshed") as LogRecord);
    const d = bare(healed.dstIpAddrs[0] ?? "");
    const okAt = await waitUntil(
      `ping ${d} after the forwarder restart`,
      async () => ((await pingFrom(ns.a, d)) ? Date.now() : undefined),
      30_000,
    );
    process.stdout.write(`      forwarder kill -9 → restart → heal → ping ${okAt - killedAt} ms after the kill; client interface kept\n`);
    // Adopted by the heal, not re-created (NSM_LEFTOVER_ADOPT_PERIOD's default of 1 min has not passed).
    expect(restarted.records.some((r) => r.msg === "keeping links left by a previous run for their connections to adopt")).to.equal(true);
    expect((await linkIn(ns.a))?.ifindex, "client interface adopted (same ifindex)").to.equal(ifindexBefore);

    const inA = await links(ns.a);
    expect(
      inA.map((l) => l.ifname),
      "pod A: exactly the one client interface",
    ).to.deep.equal([IFNAME]);
    expect(await links(ns.b), "pod B: exactly one interface").to.have.length(1);
    expect(await links(ns.node), "node netns: no leftovers of the killed forwarder").to.deep.equal([]);

    await nsc.stop("SIGTERM");
    await waitUntil(
      "both ends removed",
      async () => ((await links(ns.a)).length === 0 && (await links(ns.b)).length === 0 ? true : undefined),
      20_000,
    );
  });

  it("a restarted forwarder removes the interfaces no connection adopted once NSM_LEFTOVER_ADOPT_PERIOD has passed", async () => {
    await startEndpoint("nse-1");
    const nsc = startClient();
    await nsc.waitFor("connected", () => true, 60_000);
    const forwarder = mesh.procs.all.find((p) => p.name === "forwarder-1");
    if (forwarder === undefined) throw new Error("no forwarder");
    // Both die without a Close: nobody will heal or refresh this connection.
    await Promise.all([forwarder.stop("SIGKILL"), nsc.stop("SIGKILL")]);
    expect(await linkIn(ns.a), "the interface outlives both processes").to.not.equal(undefined);
    const restarted = await startForwarder({ NSM_LEFTOVER_ADOPT_PERIOD: "1s" });
    const swept = await restarted.waitFor("removed links left by a previous run that no connection adopted", () => true, 30_000);
    expect(swept.removed, "the removed links are reported").to.have.length.greaterThan(0);
    expect(await links(ns.a), "pod A").to.deep.equal([]);
    expect(await links(ns.b), "pod B").to.deep.equal([]);
  });

  it("50 concurrent client processes, each in its own pod netns, each get their own working interface; all removed on close", async function () {
    this.timeout(300_000);
    const PODS = 50;
    const PER_POD = 1;
    await mesh.procs.start(
      "cmd-endpoint",
      {
        NSM_NAME: "nse-many",
        NSM_CONNECT_TO: mesh.nodeSocket,
        NSM_LISTEN_ON: `unix://${join(mesh.dir, "nse-many.sock")}`,
        NSM_SERVICE_NAMES: SERVICE,
        NSM_CIDR_PREFIX: "169.254.90.0/24",
      },
      "cmd-endpoint serving",
      "nse-many",
      ns.b,
    );
    const pods: string[] = [];
    for (let i = 0; i < PODS; i++) {
      await mesh.fx.netns(`p${i}`);
      pods.push(mesh.fx.names.at(-1) ?? "");
    }
    const ifnames = Array.from({ length: PER_POD }, (_, j) => `nsm-${j + 1}`);
    const clients = pods.map((pod, i) =>
      mesh.procs.spawn(
        "cmd-nsc",
        {
          NSM_NAME: `nsc-${i}`,
          NSM_CONNECT_TO: mesh.nodeSocket,
          NSM_NETWORK_SERVICES: ifnames.map((n) => `kernel://${SERVICE}/${n}`).join(","),
          NSM_REQUEST_TIMEOUT: "60s",
        },
        `nsc-${i}`,
        pod,
      ),
    );
    const startedAt = Date.now();
    const conns = await Promise.all(
      clients.map(async (c) => {
        await c.waitFor("connected", () => c.records.filter((r) => r.msg === "connected").length === PER_POD, 240_000);
        return c.records.filter((r) => r.msg === "connected").map(connOf);
      }),
    );
    process.stdout.write(`      ${PODS * PER_POD} connections up in ${Date.now() - startedAt} ms (${PODS} clients at once)\n`);

    const ids = new Set(conns.flat().map((c) => c.id));
    expect(ids.size, "distinct connections").to.equal(PODS * PER_POD);
    const srcs = new Set(conns.flat().map((c) => c.srcIpAddrs[0]));
    expect(srcs.size, "distinct client addresses").to.equal(PODS * PER_POD);
    for (const [i, pod] of pods.entries()) {
      const ls = await links(pod);
      expect(ls.map((l) => l.ifname).sort(), `interfaces in pod ${i}`).to.deep.equal([...ifnames].sort());
      for (const c of conns[i] ?? []) {
        const d = bare(c.dstIpAddrs[0] ?? "");
        await waitUntil(`ping ${d} from pod ${i}`, async () => ((await pingFrom(pod, d)) ? true : undefined), 20_000);
      }
    }
    expect(await links(ns.b), "one endpoint-side interface per connection").to.have.length(PODS * PER_POD);

    const closingAt = Date.now();
    const exits = await Promise.all(clients.map((c) => c.stop("SIGTERM")));
    expect(exits.map((e) => e.code)).to.deep.equal(clients.map(() => 0));
    await waitUntil(
      "every interface removed",
      async () => {
        for (const n of [...pods, ns.b, ns.node]) if ((await links(n)).length > 0) return undefined;
        return true;
      },
      120_000,
      250,
    );
    process.stdout.write(`      all ${PODS * PER_POD} removed ${Date.now() - closingAt} ms after SIGTERM\n`);
  });
});
