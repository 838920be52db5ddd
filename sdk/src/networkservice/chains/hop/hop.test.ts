/**
 * Unit tests of the pieces the nsmgr and forwarder chains add (serverview, failover) on in-process chains; the
 * whole chains over gRPC are covered by the sandbox scenarios (`testing/src/sandbox/*.test.ts`).
 */

import { clone, create } from "@bufbuild/protobuf";
import {
  type Connection,
  ConnectionEventType,
  ConnectionSchema,
  MonitorScopeSelectorSchema,
  NetworkServiceRequestSchema,
  State,
} from "@nsm-ts/api/networkservice";
import { CallContext } from "@nsm-ts/base/context";
import { createServer } from "@nsm-ts/base/grpc";
import { Code, StatusError } from "@nsm-ts/base/status";
import { expect } from "chai";
import * as begin from "../../common/begin/index.js";
import * as clienturl from "../../common/clienturl/index.js";
import * as connect from "../../common/connect/index.js";
import { isRegistryFailure, registryFailure } from "../../common/discover/index.js";
import * as metadata from "../../common/metadata/index.js";
import * as monitor from "../../common/monitor/index.js";
import * as updatepath from "../../common/updatepath/index.js";
import { chain, handler, type NetworkServiceElement, passThrough, serveNetworkService } from "../../core/index.js";
import { newFailover, newNextHopMonitor, newServerView } from "./index.js";

/** The next hop: records what it was asked, fails while `failing` says so, answers with its own id and index. */
function nextHop(failing: (conn: Connection) => Code | undefined) {
  const seen: Connection[] = [];
  const el: NetworkServiceElement = {
    name: "next-hop",
    async request(_ctx, req) {
      const conn = req.connection as Connection;
      seen.push(clone(ConnectionSchema, conn));
      const code = failing(conn);
      if (code !== undefined) throw new StatusError(code, "next-hop: down");
      const out = create(NetworkServiceRequestSchema, { connection: conn }).connection as Connection;
      out.id = "next-hop-id";
      if (out.path) out.path.index = 7;
      return out;
    },
    close: async () => undefined,
  };
  return { el, seen };
}

const req = (name = "") =>
  create(NetworkServiceRequestSchema, { connection: { id: "c1", networkService: "ns", networkServiceEndpointName: name } });

describe("hop parts (nsmgr and forwarder)", () => {
  it("serverview gives the server elements this hop's id and path index back", async () => {
    const { el } = nextHop(() => undefined);
    const h = handler(chain(updatepath.newServer("me"), newServerView(), el));
    const out = await h.request(CallContext.create(), req());
    expect(out.id).to.equal("c1");
    expect(out.path?.index).to.equal(0);
  });

  it("failover (nsmgr): a refresh whose next hop is Unavailable is retried once with RESELECT_REQUESTED", async () => {
    let down = false;
    const { el, seen } = nextHop((c) => (down && c.state !== State.RESELECT_REQUESTED ? Code.Unavailable : undefined));
    const h = handler(chain(updatepath.newServer("nsmgr"), begin.newServer(), metadata.newServer(), newFailover("nsmgr"), el));
    const ctx = CallContext.create();
    const conn = await h.request(ctx, req());
    down = true;
    await h.request(ctx, create(NetworkServiceRequestSchema, { connection: conn }));
    expect(seen.map((c) => c.state)).to.deep.equal([State.UP, State.UP, State.RESELECT_REQUESTED]);
    await h.close(ctx, conn);
  });

  it("failover (nsmgr): a first Request and non-Unavailable errors are not retried", async () => {
    const { el, seen } = nextHop(() => Code.Unavailable);
    const h = handler(chain(updatepath.newServer("nsmgr"), begin.newServer(), metadata.newServer(), newFailover("nsmgr"), el));
    await h.request(CallContext.create(), req()).then(
      () => expect.fail("must fail"),
      (err: unknown) => expect((err as StatusError).code).to.equal(Code.Unavailable),
    );
    expect(seen).to.have.length(1);
    let code: Code | undefined;
    const other = nextHop(() => code);
    const h2 = handler(chain(updatepath.newServer("nsmgr"), begin.newServer(), metadata.newServer(), newFailover("nsmgr"), other.el));
    const conn = await h2.request(CallContext.create(), req());
    code = Code.PermissionDenied;
    await h2.request(CallContext.create(), create(NetworkServiceRequestSchema, { connection: conn })).catch(() => undefined);
    expect(other.seen).to.have.length(2);
  });

  it("failover (forwarder): retries without the endpoint name only when it chose the endpoint itself", async () => {
    let down = false;
    const chosen = nextHop((c) => (down && c.networkServiceEndpointName === "nse-1" ? Code.Unavailable : undefined));
    const pick: NetworkServiceElement = {
      name: "pick",
      request: (ctx, r, next) => {
        const c = r.connection as Connection;
        c.networkServiceEndpointName ||= down ? "nse-2" : "nse-1";
        return next.request(ctx, r);
      },
      close: (ctx, c, next) => next.close(ctx, c),
    };
    const h = handler(
      chain(updatepath.newServer("fwd"), begin.newServer(), metadata.newServer(), newFailover("forwarder"), pick, chosen.el),
    );
    const conn = await h.request(CallContext.create(), req());
    expect(conn.networkServiceEndpointName).to.equal("nse-1");
    down = true;
    const moved = await h.request(CallContext.create(), create(NetworkServiceRequestSchema, { connection: conn }));
    expect(moved.networkServiceEndpointName).to.equal("nse-2");

    // Named by the client: a dead endpoint stays an error.
    down = false;
    const named = nextHop((c) => (down ? Code.Unavailable : c.networkServiceEndpointName === "nse-1" ? undefined : Code.NotFound));
    const h2 = handler(chain(updatepath.newServer("fwd"), begin.newServer(), metadata.newServer(), newFailover("forwarder"), named.el));
    const c2 = await h2.request(CallContext.create(), req("nse-1"));
    down = true;
    await h2.request(CallContext.create(), create(NetworkServiceRequestSchema, { connection: c2 })).then(
      () => expect.fail("must fail"),
      (err: unknown) => expect((err as StatusError).code).to.equal(Code.Unavailable),
    );
    expect(named.seen).to.have.length(2);
  });

  it("failover: a registry failure (marked, also when it crossed a gRPC hop) is not taken for a dead next hop", async () => {
    // The next hop over gRPC fails its refresh because its registry cannot answer; connect hands the mark back.
    let registryDown = false;
    const server = createServer();
    serveNetworkService(
      server,
      chain(updatepath.newServer("fwd"), {
        name: "discover-stand-in",
        request: async (_ctx, r) => {
          if (registryDown) throw registryFailure("discover", "the look-up", new StatusError(Code.Unavailable, "registry gone"));
          return r.connection as Connection;
        },
        close: async () => undefined,
      }),
    );
    const url = await server.listen("tcp://127.0.0.1:0");
    const conn = connect.newClient();
    const seen: State[] = [];
    const h = handler(
      chain(
        updatepath.newServer("nsmgr"),
        begin.newServer(),
        metadata.newServer(),
        newFailover("nsmgr"),
        {
          name: "states",
          request: (ctx, r, next) => {
            seen.push(r.connection?.state ?? State.UP);
            return next.request(ctx, r);
          },
          close: (ctx, c, next) => next.close(ctx, c),
        },
        clienturl.newClient(url),
        conn,
      ),
    );
    try {
      const ctx = CallContext.create();
      const c = await h.request(ctx, req());
      registryDown = true;
      const err = await h.request(ctx, create(NetworkServiceRequestSchema, { connection: c })).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(isRegistryFailure(err), String(err)).to.equal(true);
      expect((err as StatusError).code).to.equal(Code.Unavailable);
      expect((err as StatusError).message).to.match(/registry/);
      expect(seen, "no retry with RESELECT_REQUESTED").to.deep.equal([State.UP, State.UP]);
    } finally {
      conn.dispose();
      await server.close({ graceMs: 0 });
    }
  });

  it("failover (forwarder): a registry failure is not retried without the endpoint name", async () => {
    let registryDown = false;
    const seen: string[] = [];
    const pick: NetworkServiceElement = {
      name: "pick",
      request: async (_ctx, r) => {
        const c = r.connection as Connection;
        seen.push(c.networkServiceEndpointName);
        if (registryDown) throw registryFailure("discover", "the look-up", new StatusError(Code.Unavailable, "registry gone"));
        c.networkServiceEndpointName ||= "nse-1";
        return c;
      },
      close: async () => undefined,
    };
    const h = handler(chain(updatepath.newServer("fwd"), begin.newServer(), metadata.newServer(), newFailover("forwarder"), pick));
    const ctx = CallContext.create();
    const conn = await h.request(ctx, req());
    registryDown = true;
    const err = await h.request(ctx, create(NetworkServiceRequestSchema, { connection: conn })).catch((e: unknown) => e);
    expect(isRegistryFailure(err)).to.equal(true);
    expect(seen).to.deep.equal(["", "nse-1"]);
  });

  describe("nexthop monitor", () => {
    /** A next hop over gRPC (updatepath + monitor when `withMonitor`), and a client chain with the nexthop monitor. */
    async function setup(withMonitor: boolean) {
      const server = createServer();
      const theirs = new monitor.ConnectionMonitor();
      serveNetworkService(
        server,
        chain(updatepath.newServer("next"), monitor.newServer(theirs), passThrough),
        withMonitor ? theirs : undefined,
      );
      const url = await server.listen("tcp://127.0.0.1:0");
      const ours = new monitor.ConnectionMonitor();
      const nh = newNextHopMonitor(ours);
      const conn = connect.newClient();
      const h = handler(
        chain(
          updatepath.newServer("me"),
          metadata.newServer(),
          monitor.newServer(ours),
          newServerView(),
          clienturl.newClient(url),
          nh,
          conn,
        ),
      );
      return { server, theirs, ours, nh, conn, h };
    }
    /** Resolves with the first UPDATE that `m` publishes after subscribing. */
    async function nextUpdate(m: monitor.ConnectionMonitor, signal: AbortSignal): Promise<Connection | undefined> {
      for await (const ev of m.monitorConnections(CallContext.create({ signal }), create(MonitorScopeSelectorSchema))) {
        if (ev.type === ConnectionEventType.UPDATE) return Object.values(ev.connections)[0];
      }
      return undefined;
    }

    it("publishes DOWN for our connection when the next hop goes away", async () => {
      const { server, ours, nh, conn, h } = await setup(true);
      const ctx = CallContext.create();
      const c = await h.request(ctx, req());
      expect(ours.get("c1")?.state).to.equal(State.UP);
      const ac = new AbortController();
      const update = nextUpdate(ours, ac.signal);
      await server.close({ graceMs: 0 });
      const ev = await update;
      ac.abort();
      expect(ev?.id).to.equal("c1");
      expect(ev?.state).to.equal(State.DOWN);
      expect(nh.size()).to.equal(0);
      nh.dispose();
      conn.dispose();
      expect(c.id).to.equal("c1");
    });

    it("passes a next hop's REFRESH_REQUESTED on to our connection and keeps watching", async () => {
      const { server, theirs: next, ours, nh, conn, h } = await setup(true);
      const ctx = CallContext.create();
      const c = await h.request(ctx, req());
      // The watch subscribes after the Request returned.
      while (next.subscribers === 0) await new Promise<void>((r) => setImmediate(r));
      const ac = new AbortController();
      const update = nextUpdate(ours, ac.signal);
      const nextId = next.connections()[0]?.id ?? "";
      expect(next.setState(nextId, State.REFRESH_REQUESTED)).to.equal(true);
      const ev = await update;
      ac.abort();
      expect(ev?.state).to.equal(State.REFRESH_REQUESTED);
      expect(nh.size(), "still watching").to.equal(1);
      await h.close(ctx, c);
      nh.dispose();
      conn.dispose();
      await server.close();
    });

    it("our own Close ends the watch before it reaches the next hop", async () => {
      const { server, nh, conn, h } = await setup(true);
      const ctx = CallContext.create();
      const c = await h.request(ctx, req());
      expect(nh.size()).to.equal(1);
      await h.close(ctx, c);
      expect(nh.size()).to.equal(0);
      nh.dispose();
      conn.dispose();
      await server.close();
    });

    it("leaves a next hop without MonitorConnections unwatched instead of reporting it DOWN", async () => {
      const { server, ours, nh, conn, h } = await setup(false);
      const ctx = CallContext.create();
      const c = await h.request(ctx, req());
      const until = Date.now() + 2000;
      while (nh.size() > 0 && Date.now() < until) await new Promise<void>((r) => setImmediate(r));
      expect(nh.size(), "the watch ended").to.equal(0);
      expect(ours.get("c1")?.state).to.equal(State.UP);
      await h.close(ctx, c);
      nh.dispose();
      conn.dispose();
      await server.close();
    });
  });
});
