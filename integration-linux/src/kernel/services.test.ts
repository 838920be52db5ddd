import type { ChildProcess } from "node:child_process";
import { once } from "node:events";
import { Batch, createIpExecutor, type Netns, nft, runCommand, services } from "@nsm-ts/sdk-linux";
import { expect } from "chai";
import { KernelFixture, skipUnlessKernel } from "./fixture.js";
import { connectMany, startNameServer, tally } from "./services.fixture.js";

type View = services.ServiceView;
type Backend = services.ServiceBackend;

const RR_IP = "203.0.113.10";
const CLOSEST_IP = "203.0.113.11";
const HASH_IP = "203.0.113.12";
const PORT = 80;
const BACKEND_PORT = 8080;

/**
 * The data plane against the real kernel: a client namespace on node 1 with a veth to a backend namespace on
 * node 1 and one on node 2, each running a TCP server that answers its own name; the service's rules are put
 * into the client namespace by the reconciler, as the forwarder does for the client pods it serves.
 */
describe("kernel: service data plane (nftables in the client namespace)", function () {
  this.timeout(60000);
  const fx = new KernelFixture();
  const ip = createIpExecutor();
  let client: Netns;
  let b1: Netns;
  let b2: Netns;
  let servers: ChildProcess[];
  let ac: AbortController;
  let dp: services.ServiceDataplane;

  before(async function () {
    await skipUnlessKernel(this);
    const r = await runCommand(["nft", "--version"]).catch(() => undefined);
    if (r?.code !== 0) {
      process.stderr.write("      skipping service data-plane tests: nft is not installed (apt-get install nftables)\n");
      this.skip();
    }
  });

  beforeEach(async () => {
    client = await fx.netns("svc-c");
    b1 = await fx.netns("svc-b1");
    b2 = await fx.netns("svc-b2");
    await new Batch(ip, client)
      .addVeth({ name: "to-b1", peerName: "eth0", peerNetns: b1 })
      .addAddress("to-b1", "198.51.100.1/30")
      .setUp("to-b1")
      .addVeth({ name: "to-b2", peerName: "eth0b2", peerNetns: b2 })
      .addAddress("to-b2", "198.51.100.5/30")
      .setUp("to-b2")
      .commit();
    // The client's source address is chosen before DNAT (on the ServiceIP's route), so each backend routes
    // everything back over its own link, as a vL3 backend routes the whole prefix back into the mesh.
    await new Batch(ip, b1)
      .addAddress("eth0", "198.51.100.2/30")
      .setUp("eth0")
      .addRoute({ dst: "default", gateway: "198.51.100.1", dev: "eth0" })
      .commit();
    await new Batch(ip, b2)
      .addAddress("eth0b2", "198.51.100.6/30")
      .setUp("eth0b2")
      .addRoute({ dst: "default", gateway: "198.51.100.5", dev: "eth0b2" })
      .commit();
    // The ServiceIPs need a route for connect() to start; after DNAT the kernel routes again, to the backend.
    await new Batch(ip, client).addRoute({ dst: "203.0.113.0/24", gateway: "198.51.100.2", dev: "to-b1" }).commit();
    servers = [
      await startNameServer(b1, "backend-1", "198.51.100.2", BACKEND_PORT),
      await startNameServer(b2, "backend-2", "198.51.100.6", BACKEND_PORT),
    ];
    ac = new AbortController();
    dp = services.createServiceDataplane({ signal: ac.signal, refreshIntervalMs: 0 });
  });

  afterEach(async () => {
    ac.abort();
    await dp?.stopped;
    for (const s of servers ?? []) if (s.exitCode === null && s.signalCode === null) s.kill("SIGKILL");
    await fx.cleanup();
  });

  const backend = (name: string, address: string, node: string, health: Backend["health"] = "healthy"): Backend => ({
    name,
    address,
    port: BACKEND_PORT,
    protocol: "tcp",
    portName: "",
    node,
    zone: "zone-a",
    weight: 1,
    health,
  });
  const view = (revision: string, backends: Backend[]): View => ({
    name: "names",
    revision,
    frontends: [
      { address: RR_IP, port: PORT, protocol: "tcp", policy: "round-robin", portName: "" },
      { address: CLOSEST_IP, port: PORT, protocol: "tcp", policy: "closest", portName: "" },
      { address: HASH_IP, port: PORT, protocol: "tcp", policy: "consistent-hash", portName: "" },
    ],
    backends,
  });
  const both = (): Backend[] => [backend("backend-1", "198.51.100.2", "node-1"), backend("backend-2", "198.51.100.6", "node-2")];
  const node1 = { node: "node-1", zone: "zone-a" };

  it("balances round robin over both nodes, keeps closest on node 1, hashes consistently, and leaves nothing on teardown", async () => {
    await dp.waitReconciled(await dp.setNamespace(client, node1, [view("1", both())]));
    expect(dp.serviceStatus("names")).to.deep.include({ state: "reconciled", revision: "1" });

    const rr = tally(await connectMany(client, RR_IP, PORT, 100));
    expect(rr["backend-1"], JSON.stringify(rr)).to.be.at.least(30);
    expect(rr["backend-2"], JSON.stringify(rr)).to.be.at.least(30);
    expect((rr["backend-1"] ?? 0) + (rr["backend-2"] ?? 0)).to.equal(100);

    expect(tally(await connectMany(client, CLOSEST_IP, PORT, 20))).to.deep.equal({ "backend-1": 20 });
    const hashed = tally(await connectMany(client, HASH_IP, PORT, 40));
    expect((hashed["backend-1"] ?? 0) + (hashed["backend-2"] ?? 0)).to.equal(40);

    // Direct connections (not through a ServiceIP) are untouched.
    expect(tally(await connectMany(client, "198.51.100.6", BACKEND_PORT, 3))).to.deep.equal({ "backend-2": 3 });

    await dp.waitReconciled(await dp.removeNamespace(client));
    expect(await nft.findNftLeftovers({ namespaces: [client.url, b1.url, b2.url] })).to.deep.equal([]);
    const after = tally(await connectMany(client, RR_IP, PORT, 1, 500));
    expect(after["backend-1"] ?? 0).to.equal(0); // the ServiceIP no longer leads anywhere
  });

  it("SIGKILL of a backend: once it is marked down, every new connection reaches the survivor within 1 s", async () => {
    await dp.waitReconciled(await dp.setNamespace(client, node1, [view("1", both())]));
    const victim = servers[1] as ChildProcess;
    // The health signal, as the control plane would send it: the backend's process is gone.
    const markedDown = once(victim, "exit").then(async () => {
      const rev = await dp.upsert(
        view("2", [backend("backend-1", "198.51.100.2", "node-1"), backend("backend-2", "198.51.100.6", "node-2", "unhealthy")]),
      );
      await dp.waitReconciled(rev);
    });
    const t0 = performance.now();
    victim.kill("SIGKILL");
    await markedDown;
    const applyMs = performance.now() - t0;
    const next = await connectMany(client, RR_IP, PORT, 30);
    const doneMs = performance.now() - t0;
    expect(tally(next)).to.deep.equal({ "backend-1": 30 });
    expect(applyMs, `rules applied ${applyMs.toFixed(0)} ms after the kill`).to.be.below(1000);
    process.stderr.write(`      kill → rules applied ${applyMs.toFixed(0)} ms; 30 connections done at ${doneMs.toFixed(0)} ms\n`);
  });

  it("applies and removes a local redirect: node 1's clients go to node 1's instance only while it exists", async () => {
    await dp.waitReconciled(await dp.setNamespace(client, node1, [view("1", both())]));
    // With a local redirect the control plane sends node 1 only its local instances.
    await dp.waitReconciled(await dp.upsert(view("2", [backend("backend-1", "198.51.100.2", "node-1")])));
    expect(tally(await connectMany(client, RR_IP, PORT, 20))).to.deep.equal({ "backend-1": 20 });
    await dp.waitReconciled(await dp.upsert(view("3", both())));
    const rr = tally(await connectMany(client, RR_IP, PORT, 20));
    expect(rr).to.deep.equal({ "backend-1": 10, "backend-2": 10 });
    await dp.waitReconciled(await dp.remove("names"));
    expect(await nft.findNftLeftovers({ namespaces: [client.url] })).to.deep.equal([]);
  });

  it("reports an error for a namespace that is gone and recovers when it is removed", async () => {
    const gone = await fx.netns("svc-gone");
    await runCommand(["ip", "netns", "delete", gone.name as string]);
    await dp.setNamespace(gone, node1, [view("1", both())]);
    const stop = new AbortController();
    for await (const s of dp.watchStatus(stop.signal)) {
      if (s.state === "error") {
        expect(s.message).to.contain("not found");
        break;
      }
    }
    stop.abort();
    await dp.waitReconciled(await dp.removeNamespace(gone));
  });
});
