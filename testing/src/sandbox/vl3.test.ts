/**
 * vL3 scenarios on the sandbox, after upstream's vL3 suite (chains/nsmgr/vl3_test.go): many clients on one vL3
 * endpoint, two and three endpoints meshed through the registry watch, an endpoint requesting its own service,
 * a prefix reset replacing stale addresses on refresh, a prefix-server restart the endpoint survives with its own
 * prefix, a restarted vL3 endpoint re-joining its clients, and per-node /26 subnets with ResourceExhausted.
 */
import type { Connection } from "@nsm-ts/api/networkservice";
import { dial } from "@nsm-ts/base/grpc";
import { type Cidr, cidrContains, parseCidr, parseIp } from "@nsm-ts/base/netaddr";
import { Code, isStatusError } from "@nsm-ts/base/status";
import { ipam, type NetworkServiceElement } from "@nsm-ts/sdk/networkservice";
import { expect } from "chai";
import { createSandbox, type Sandbox } from "./index.js";
import { leftovers, resourceSnapshot } from "./leak-check.js";
import { addVl3Endpoint, PrefixServer, pathOf, srcOf, type Vl3Endpoint } from "./vl3.fixture.js";

const SERVICE = "vl3-ns";
const request = (name?: string): { connection: { networkService: string; networkServiceEndpointName?: string } } => ({
  connection: { networkService: SERVICE, ...(name ? { networkServiceEndpointName: name } : {}) },
});
const inside = (addr: string, prefix: string): boolean =>
  cidrContains(parseCidr(prefix) as Cidr, parseIp(addr.split("/")[0] ?? "") ?? { family: 4, value: -1n });
const routes = (c: Connection | undefined, side: "src" | "dst" = "src"): string[] =>
  (side === "src" ? c?.context?.ipContext?.srcRoutes : c?.context?.ipContext?.dstRoutes)?.map((r) =>
    r.nextHop ? `${r.prefix} via ${r.nextHop}` : r.prefix,
  ) ?? [];

/** Resolves once a client's heal watches node `node`'s nsmgr (heal only notices events published after that). */
async function watched(sb: Sandbox, node: number): Promise<void> {
  const nsmgr = sb.nodes[node]?.nsmgr;
  while ((nsmgr?.instance.monitor.subscribers ?? 0) === 0) await new Promise<void>((r) => setImmediate(r));
}

/** Records the connections an endpoint established, with a way to wait for one. */
class Recorder {
  readonly conns = new Map<string, Connection>();
  private waiters: Array<{ pred: (c: Connection) => boolean; resolve: (c: Connection) => void }> = [];
  readonly element: NetworkServiceElement = {
    name: "recorder",
    request: async (ctx, req, next) => {
      const c = await next.request(ctx, req);
      this.conns.set(c.id, c);
      for (const w of this.waiters.filter((x) => x.pred(c))) w.resolve(c);
      this.waiters = this.waiters.filter((x) => !x.pred(c));
      return c;
    },
    close: (ctx, conn, next) => next.close(ctx, conn).finally(() => this.conns.delete(conn.id)),
  };
  /** Resolves at the next established connection satisfying `pred` (or one already there). */
  next(pred: (c: Connection) => boolean): Promise<Connection> {
    const have = [...this.conns.values()].find(pred);
    if (have) return Promise.resolve(have);
    return new Promise((resolve) => this.waiters.push({ pred, resolve }));
  }
}

describe("sandbox vL3 scenarios", function () {
  this.timeout(30_000);
  let sb: Sandbox | undefined;
  let prefixes: PrefixServer | undefined;
  let vl3s: Vl3Endpoint[] = [];
  let before: Map<string, number>;

  beforeEach(async () => {
    await Promise.resolve(); // mocha arms the hook timer once this function has returned its promise
    before = resourceSnapshot();
  });
  afterEach(async () => {
    for (const v of vl3s) await v.close();
    vl3s = [];
    await sb?.close();
    sb = undefined;
    await prefixes?.stop();
    prefixes = undefined;
    expect(await leftovers(before), "sockets, servers or timers left behind").to.deep.equal({});
  });

  const start = async (nodes: number, pool = "169.254.0.0/16", prefixLength = 24): Promise<Sandbox> => {
    prefixes = await PrefixServer.start({ prefix: pool, prefixLength });
    sb = await createSandbox({ nodes });
    return sb;
  };
  const vl3 = async (node: number, name: string, additional: NetworkServiceElement[] = []): Promise<Vl3Endpoint> => {
    if (!sb || !prefixes) throw new Error("start() first");
    const v = await addVl3Endpoint(sb, {
      node,
      name,
      service: SERVICE,
      prefixServer: prefixes,
      globalPrefix: "169.254.0.0/16",
      additional,
    });
    vl3s.push(v);
    return v;
  };

  it("10 clients on one vL3 endpoint get distinct addresses of its prefix and routes to the whole range", async () => {
    const s = await start(1);
    const nse = await vl3(0, "vl3-a");
    const nsc = s.addClient(0);
    const conns = await Promise.all(Array.from({ length: 10 }, () => nsc.request(request())));
    const addrs = conns.map(srcOf);
    expect(new Set(addrs).size, addrs.join(" ")).to.equal(10);
    for (const c of conns) {
      expect(inside(srcOf(c), nse.ipam.prefix), `${srcOf(c)} in ${nse.ipam.prefix}`).to.equal(true);
      expect(c.context?.ipContext?.dstIpAddrs).to.deep.equal([nse.ipam.selfAddress]);
      expect(routes(c)).to.include(`169.254.0.0/16 via ${nse.ipam.selfIp}`);
    }
    expect(nse.ipam.size).to.equal(10);
    for (const c of conns) await nsc.close(c);
    expect(nse.ipam.size, "every address back on Close").to.equal(0);
  });

  it("two vL3 endpoints on two nodes connect to each other once; each routes the other's prefix", async () => {
    const s = await start(2);
    const recA = new Recorder();
    const a = await vl3(0, "vl3-a", [recA.element]);
    const b = await vl3(1, "vl3-b");
    // The later name connects to the earlier one.
    const peerConn = await b.peers.whenConnected("vl3-a");
    expect(a.peers.connected()).to.deep.equal([]);
    expect(pathOf(peerConn)).to.deep.equal(["vl3-b", "nsmgr-1", "forwarder-1", "nsmgr-0", "forwarder-0", "vl3-a"]);
    expect(peerConn.context?.ipContext?.srcIpAddrs).to.deep.equal([b.ipam.selfAddress]);
    expect(routes(peerConn)).to.have.members([a.ipam.selfAddress, `${a.ipam.prefix} via ${a.ipam.selfIp}`]);
    // What A holds for B: routes to B's address and B's whole prefix through it, and no address of A's prefix spent.
    const atA = await recA.next((c) => pathOf(c)[0] === "vl3-b");
    expect(routes(atA, "dst")).to.include.members([b.ipam.selfAddress, `${b.ipam.prefix} via ${b.ipam.selfIp}`]);
    expect(a.ipam.size).to.equal(0);
    // Members of both endpoints: each gets an address of its own endpoint's prefix, distinct across the network.
    const c1 = await s.addClient(0).request(request("vl3-a"));
    const c2 = await s.addClient(1).request(request("vl3-b"));
    expect(inside(srcOf(c1), a.ipam.prefix) && inside(srcOf(c2), b.ipam.prefix)).to.equal(true);
    expect(a.ipam.prefix).to.not.equal(b.ipam.prefix);
  });

  it("three vL3 endpoints form a full mesh; an endpoint that leaves is disconnected", async () => {
    await start(3);
    const a = await vl3(0, "vl3-a");
    const b = await vl3(1, "vl3-b");
    const c = await vl3(2, "vl3-c");
    await Promise.all([b.peers.whenConnected("vl3-a"), c.peers.whenConnected("vl3-a"), c.peers.whenConnected("vl3-b")]);
    expect(a.peers.connected()).to.deep.equal([]);
    expect(b.peers.connected()).to.deep.equal(["vl3-a"]);
    expect(c.peers.connected().sort()).to.deep.equal(["vl3-a", "vl3-b"]);
    expect(new Set([a, b, c].map((v) => v.ipam.prefix)).size).to.equal(3);
    const left = new Promise<void>((resolve) => {
      const check = (): void => void (c.peers.connected().includes("vl3-a") ? setImmediate(check) : resolve());
      check();
    });
    await a.endpoint.unregister();
    await left;
    expect(c.peers.connected()).to.deep.equal(["vl3-b"]);
  });

  it("an endpoint can request its own service: it becomes a member of its own network", async () => {
    const s = await start(1);
    const a = await vl3(0, "vl3-a");
    const self = s.addClient(0, { name: "vl3-a-self" });
    const conn = await self.request(request("vl3-a"));
    expect(conn.networkServiceEndpointName).to.equal("vl3-a");
    expect(inside(srcOf(conn), a.ipam.prefix)).to.equal(true);
    expect(srcOf(conn)).to.not.equal(a.ipam.selfIp);
    await self.close(conn);
  });

  it("a prefix-server restart keeps the endpoint's prefix; after a prefix reset the endpoint's refresh request replaces stale addresses", async () => {
    const s = await start(2);
    const rec = new Recorder();
    const a = await vl3(0, "vl3-a", [rec.element]);
    const b = await vl3(1, "vl3-b");
    await b.peers.whenConnected("vl3-a");
    const nsc = s.addClient(0);
    const conn = await nsc.request(request("vl3-a"));
    const old = { prefix: a.ipam.prefix, self: a.ipam.selfIp, gen: a.ipam.generation, addr: srcOf(conn) };

    // Restart with the same pool: the endpoint asks for its own prefix again and gets it; nothing changes.
    await prefixes?.restart();
    const same = await nsc.request({ connection: conn });
    expect(srcOf(same)).to.equal(old.addr);
    const reset = new Promise<void>((resolve) => {
      const stop = a.ipam.subscribe(() => {
        stop();
        resolve();
      });
    });
    await watched(s, 0);
    // A new pool that excludes the old prefix: on reconnect the endpoint must take another one.
    await prefixes?.restart({ prefix: "169.254.0.0/16", prefixLength: 24, excludePrefixes: [old.prefix] });
    await reset;
    expect(a.ipam.prefix).to.not.equal(old.prefix);
    expect(a.ipam.generation).to.equal(old.gen + 1);
    // No call from the test: the endpoint's REFRESH_REQUESTED reaches the client's heal through both hops.
    const first = (c: Connection): string => c.path?.pathSegments[0]?.id ?? "";
    const atEndpoint = await rec.next((c) => first(c) === conn.id && inside(srcOf(c), a.ipam.prefix));
    expect(atEndpoint.context?.ipContext?.srcIpAddrs).to.have.length(1);
    const refreshed = await nsc.request({ connection: same });
    expect(srcOf(refreshed)).to.equal(srcOf(atEndpoint));
    expect(refreshed.context?.ipContext?.dstIpAddrs).to.deep.equal([a.ipam.selfAddress]);
    const stale = routes(refreshed).filter((r) => r.startsWith(old.prefix) || r === `${old.self}/32` || r.endsWith(`via ${old.self}`));
    expect(stale, "routes of the old prefix").to.deep.equal([]);
    await nsc.close(refreshed);
  });

  it("heal of a vL3 endpoint: after a restart its clients come back with their addresses", async () => {
    const s = await start(1);
    const rec = new Recorder();
    const a = await vl3(0, "vl3-a", [rec.element]);
    const nsc = s.addClient(0);
    const conns = await Promise.all([nsc.request(request()), nsc.request(request())]);
    const first = (c: Connection): string => c.path?.pathSegments[0]?.id ?? "";
    await rec.next((c) => first(c) === conns[1]?.id);
    rec.conns.clear();
    const prefix = a.ipam.prefix;
    await a.restart();
    expect(a.ipam.prefix, "the prefix came back to the pool and to the restarted endpoint").to.equal(prefix);
    expect(a.ipam.size, "a fresh IPAM").to.equal(0);
    const healed = await Promise.all(conns.map((c) => rec.next((x) => first(x) === c.id)));
    expect(healed.map(srcOf).sort()).to.deep.equal(conns.map(srcOf).sort());
    expect(a.ipam.size).to.equal(2);
  });

  it("per-node subnets: each node's vL3 endpoint takes a /26 of the platform range; exhaustion is ResourceExhausted naming the pool", async () => {
    const s = await start(2, "169.254.64.0/25", 26); // room for two nodes
    const a = await vl3(0, "vl3-node-0");
    const b = await vl3(1, "vl3-node-1");
    expect([a.ipam.prefix, b.ipam.prefix].sort()).to.deep.equal(["169.254.64.0/26", "169.254.64.64/26"]);
    const c1 = await s.addClient(0).request(request("vl3-node-0"));
    const c2 = await s.addClient(1).request(request("vl3-node-1"));
    expect(srcOf(c1)).to.not.equal(srcOf(c2));
    const third = ipam.vl3.createVl3Ipam();
    const ch = dial(prefixes?.url ?? "");
    const pc = ipam.vl3.startPrefixClient(ch, third);
    const err = await pc.ready.then(
      () => undefined,
      (e: unknown) => e,
    );
    await pc.close();
    ch.close();
    expect(isStatusError(err) && err.code).to.equal(Code.ResourceExhausted);
    expect((err as Error).message).to.include("169.254.64.0/25");
  });
});
