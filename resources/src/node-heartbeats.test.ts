import { NodeManager, NodeState } from "@nsm-ts/api/resources";
import { MockClock } from "@nsm-ts/base/clock";
import { type Channel, createClient, createServer, dial, type NsmServer } from "@nsm-ts/base/grpc";
import { expect } from "chai";
import { createMemoryResourceStore, type RegisteredResourceManagers, registerResourceManagers, runNodeHeartbeats } from "./index.js";

describe("resources: runNodeHeartbeats (a forwarder's side, mock clock)", () => {
  let server: NsmServer;
  let ch: Channel;
  let reg: RegisteredResourceManagers;
  const clock = new MockClock();

  beforeEach(async () => {
    server = createServer();
    reg = registerResourceManagers(server, { store: createMemoryResourceStore(), clock, heartbeatTimeoutMs: 30_000 });
    ch = dial(await server.listen("tcp://127.0.0.1:0"));
  });
  afterEach(async () => {
    ch.close();
    await server.close();
    expect(clock.pending()).to.equal(0);
  });

  it("registers the node, keeps it in service while it runs, and the sweep takes it out once it stops", async () => {
    const client = createClient(NodeManager, ch);
    const ctl = new AbortController();
    const info = { id: "node-a", tunnelIp: "169.254.10.1", labels: { "topology.kubernetes.io/zone": "zone-a" } };
    const running = runNodeHeartbeats(client, info, { clock, intervalMs: 10_000, signal: ctl.signal });
    const nodes = reg.managers.nodes;
    for (let beat = 0; beat < 6; beat++) {
      await clock.untilPending(); // the heartbeat was answered and the next one is due
      expect((await client.getNode({ id: "node-a" })).state).to.equal(NodeState.IN_SERVICE);
      expect(await nodes.sweep()).to.deep.equal([]);
      await clock.set(clock.nextAt() ?? 0);
    }
    await clock.untilPending();
    ctl.abort();
    await running;
    const node = await client.getNode({ id: "node-a" });
    expect(node).to.deep.include({ tunnelIp: "169.254.10.1", labels: info.labels, state: NodeState.IN_SERVICE });
    await clock.advance(30_001);
    expect(await nodes.sweep()).to.deep.equal(["node-a"]);
    expect((await client.getNode({ id: "node-a" })).state).to.equal(NodeState.OUT_OF_SERVICE);
    // Started again (a restarted forwarder): it updates the node it finds and is back in service.
    const again = new AbortController();
    const rerun = runNodeHeartbeats(client, { ...info, tunnelIp: "169.254.10.2" }, { clock, signal: again.signal });
    await clock.untilPending();
    again.abort();
    await rerun;
    expect(await client.getNode({ id: "node-a" })).to.deep.include({ tunnelIp: "169.254.10.2", state: NodeState.IN_SERVICE });
  });
});
