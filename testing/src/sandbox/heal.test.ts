/**
 * Heal scenarios on the sandbox (upstream's heal and nsmgr suites): a dead NSE replaced by a new one (local and
 * remote), a dead forwarder, a restarted nsmgr (restored through the same NSE), a restarted registry, forwarder
 * stickiness, and Close ending a heal that cannot succeed. Every wait is for an event (a Request reaching a
 * part), never a sleep.
 */

import { create } from "@bufbuild/protobuf";
import { type Connection, type NetworkServiceRequest, NetworkServiceRequestSchema } from "@nsm-ts/api/networkservice";
import { NetworkServiceEndpointSchema } from "@nsm-ts/api/registry";
import { CallContext } from "@nsm-ts/base/context";
import type { NetworkServiceElement } from "@nsm-ts/sdk/networkservice";
import { expect } from "chai";
import { newCounter } from "../elements/count/index.js";
import { createSandbox, type Sandbox } from "./index.js";
import { leftovers, resourceSnapshot } from "./leak-check.js";

const request = (service = "ns-1"): NetworkServiceRequest =>
  create(NetworkServiceRequestSchema, { connection: { networkService: service } });

/** An element recording the path names of every Request it sees, with a way to wait for a matching one. */
class Seen {
  readonly paths: string[][] = [];
  private waiters: Array<{ pred: (names: string[]) => boolean; resolve: () => void }> = [];
  readonly element: NetworkServiceElement = {
    name: "seen",
    request: async (ctx, req, next) => {
      const names = req.connection?.path?.pathSegments.map((s) => s.name) ?? [];
      const out = await next.request(ctx, req);
      this.paths.push(names);
      for (const w of this.waiters.filter((x) => x.pred(names))) w.resolve();
      this.waiters = this.waiters.filter((x) => !x.pred(names));
      return out;
    },
    close: (ctx, conn, next) => next.close(ctx, conn),
  };
  /** Resolves at the next successful Request whose incoming path satisfies `pred`. */
  next(pred: (names: string[]) => boolean = () => true): Promise<void> {
    return new Promise((resolve) => this.waiters.push({ pred, resolve }));
  }
}

/** An element calling `hook` whenever a Request through it fails. */
function onFailure(hook: () => void): NetworkServiceElement {
  return {
    name: "on-failure",
    async request(ctx, req, next) {
      try {
        return await next.request(ctx, req);
      } catch (err) {
        hook();
        throw err;
      }
    },
    close: (ctx, conn, next) => next.close(ctx, conn),
  };
}

/**
 * Resolves once the client's heal watches node 0's nsmgr (a MonitorConnections subscriber there): heal only
 * notices events published after it subscribed, so a part killed earlier would go unnoticed.
 */
async function watched(sb: Sandbox, node = 0): Promise<void> {
  const nsmgr = sb.nodes[node]?.nsmgr;
  const until = Date.now() + 2000;
  while ((nsmgr?.instance.monitor.subscribers ?? 0) === 0 && Date.now() < until) await new Promise<void>((r) => setImmediate(r));
}

/** Resolves once node 0's nsmgr lists `n` forwarders registered through it (a watch, not polling). */
async function forwardersKnown(sb: Sandbox, n: number): Promise<void> {
  const ac = new AbortController();
  const names = new Set<string>();
  const ctx = CallContext.create({ signal: ac.signal });
  const template = create(NetworkServiceEndpointSchema, { networkServiceNames: ["forwarder"] });
  try {
    for await (const r of sb.nodes[0]?.nsmgr.instance.registry.local.find(ctx, { template, watch: true }) ?? []) {
      if (r.deleted) names.delete(r.entry.name);
      else names.add(r.entry.name);
      if (names.size >= n) return;
    }
  } finally {
    ac.abort();
  }
}

describe("sandbox heal scenarios", function () {
  this.timeout(20_000);
  let sb: Sandbox | undefined;
  let before: Map<string, number>;

  beforeEach(async () => {
    await Promise.resolve(); // mocha arms the hook timer once this function has returned its promise
    before = resourceSnapshot();
  });
  afterEach(async () => {
    await sb?.close();
    sb = undefined;
    expect(await leftovers(before), "sockets, servers or timers left behind").to.deep.equal({});
  });

  for (const remote of [false, true]) {
    it(`heals to a new endpoint after the endpoint dies (${remote ? "remote" : "local"})`, async () => {
      sb = await createSandbox({ nodes: 2 });
      const nse1 = await sb.addEndpoint(0, { name: "nse-1", services: ["ns-1"] });
      const nsc = sb.addClient(remote ? 1 : 0);
      const conn = await nsc.request(request());
      expect(conn.path?.pathSegments).to.have.length(remote ? 6 : 4);
      await watched(sb, remote ? 1 : 0);
      const seen2 = new Seen();
      await sb.addEndpoint(0, { name: "nse-2", services: ["ns-1"], additional: [seen2.element] });
      const healed = seen2.next();
      await nse1.kill();
      await healed;
      expect(seen2.paths[0]?.[0]).to.equal("nsc-0");
      // The client's own refresh now goes to the new endpoint too.
      const again = await nsc.request({ connection: conn });
      expect(again.networkServiceEndpointName).to.equal("nse-2");
      await nsc.close(again);
    });
  }

  it("heals through another forwarder after the forwarder dies", async () => {
    sb = await createSandbox({ nodes: 1 });
    const seen = new Seen();
    await sb.addEndpoint(0, { name: "nse-1", services: ["ns-1"], additional: [seen.element] });
    const nsc = sb.addClient(0);
    const conn = await nsc.request(request());
    expect(conn.path?.pathSegments[2]?.name).to.equal("forwarder-0");
    await watched(sb);
    await sb.addForwarder(0, "forwarder-0b");
    const healed = seen.next((names) => names.includes("forwarder-0b"));
    await sb.nodes[0]?.forwarder.kill();
    await healed;
    const again = await nsc.request({ connection: conn });
    expect(again.path?.pathSegments[2]?.name).to.equal("forwarder-0b");
    await nsc.close(again);
  });

  it("heals through the same forwarder after it restarts (fresh state, same URL)", async () => {
    sb = await createSandbox({ nodes: 2, transport: "unix" });
    const counter = newCounter("nse");
    const seen = new Seen();
    await sb.addEndpoint(0, { name: "nse-1", services: ["ns-1"], additional: [seen.element, counter] });
    const nsc = sb.addClient(1);
    const conn = await nsc.request(request());
    await watched(sb, 1);
    const healed = seen.next();
    await sb.nodes[0]?.forwarder.restart();
    await healed;
    const again = await nsc.request({ connection: conn });
    expect(again.path?.pathSegments.map((s) => s.name)).to.deep.equal([
      "nsc-0",
      "nsmgr-1",
      "forwarder-1",
      "nsmgr-0",
      "forwarder-0",
      "nse-1",
    ]);
    expect(counter.uniqueRequests, "the same connection at the same endpoint").to.equal(1);
    await nsc.close(again);
  });

  it("heals after the local nsmgr restarts, through the same forwarder and endpoint", async () => {
    sb = await createSandbox({ nodes: 1, transport: "unix" });
    const counter = newCounter("nse");
    const seen = new Seen();
    await sb.addEndpoint(0, { name: "nse-1", services: ["ns-1"], additional: [seen.element, counter] });
    const nsc = sb.addClient(0);
    const conn = await nsc.request(request());
    const healed = seen.next();
    await sb.nodes[0]?.nsmgr.restart();
    await healed;
    expect(counter.uniqueRequests, "the same connection at the same endpoint").to.equal(1);
    expect(counter.closes).to.equal(0);
    const again = await nsc.request({ connection: conn });
    expect(again.path?.pathSegments.map((s) => s.name)).to.deep.equal(["nsc-0", "nsmgr-0", "forwarder-0", "nse-1"]);
    expect(again.path?.pathSegments[3]?.id).to.equal(conn.path?.pathSegments[3]?.id);
    await nsc.close(again);
    expect(counter.closes).to.equal(1);
  });

  it("keeps working after the registry restarts: registrations come back, refreshes and new requests succeed", async () => {
    sb = await createSandbox({ nodes: 2 });
    await sb.addEndpoint(0, { name: "nse-1", services: ["ns-1"] });
    const nsc = sb.addClient(1);
    const conn = await nsc.request(request());
    await sb.registry.restart();
    const again = await nsc.request({ connection: conn });
    expect(again.networkServiceEndpointName).to.equal("nse-1");
    await sb.addEndpoint(1, { name: "nse-2", services: ["ns-2"] });
    const nsc2 = sb.addClient(0);
    const other = await nsc2.request(request("ns-2"));
    expect(other.path?.pathSegments).to.have.length(6);
    await nsc2.close(other);
    await nsc.close(again);
  });

  it("forwarder stickiness: kept across refreshes and an nsmgr restart, changed when the forwarder dies", async () => {
    sb = await createSandbox({ nodes: 1 });
    const fb = await sb.addForwarder(0, "forwarder-0b");
    const forwarders = new Map([
      ["forwarder-0", sb.nodes[0]?.forwarder],
      ["forwarder-0b", fb],
    ]);
    await sb.addEndpoint(0, { name: "nse-1", services: ["ns-1"] });
    // No heal: the test refreshes itself once the restarted nsmgr knows both forwarders again, so the choice
    // depends on stickiness only, not on which forwarder re-registered first.
    const nsc = sb.addClient(0, { heal: false });
    const conn = await nsc.request(request());
    const first = conn.path?.pathSegments[2]?.name as string;
    for (let i = 0; i < 3; i++) {
      const c = await nsc.request({ connection: conn });
      expect(c.path?.pathSegments[2]?.name).to.equal(first);
    }
    await sb.nodes[0]?.nsmgr.restart();
    await forwardersKnown(sb, 2);
    const restored = await nsc.request({ connection: conn });
    expect(restored.path?.pathSegments[2]?.name, "the forwarder on the path is kept").to.equal(first);
    await forwarders.get(first)?.kill();
    const moved = await nsc.request({ connection: restored });
    const other = first === "forwarder-0" ? "forwarder-0b" : "forwarder-0";
    expect(moved.path?.pathSegments[2]?.name).to.equal(other);
    await nsc.close(moved);
  });

  it("Close while healing ends the heal loop", async () => {
    sb = await createSandbox({ nodes: 1 });
    const nse = await sb.addEndpoint(0, { name: "nse-1", services: ["ns-1"] });
    let failed: () => void = () => undefined;
    const healFailing = new Promise<void>((r) => {
      failed = r;
    });
    const nsc = sb.addClient(0, { additional: [onFailure(() => failed())] });
    const conn: Connection = await nsc.request(request());
    await watched(sb);
    await nse.kill();
    await healFailing;
    await nsc.close(conn);
  });
});
