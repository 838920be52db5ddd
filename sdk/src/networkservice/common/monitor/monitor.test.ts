import { create } from "@bufbuild/protobuf";
import {
  type Connection,
  type ConnectionEvent,
  ConnectionEventType,
  ConnectionSchema,
  MonitorScopeSelectorSchema,
  NetworkServiceRequestSchema,
  State,
} from "@nsm-ts/api/networkservice";
import { CallContext } from "@nsm-ts/base/context";
import { Code, isStatusError } from "@nsm-ts/base/status";
import { expect } from "chai";
import { chain, handler } from "../../core/index.js";
import * as begin from "../begin/index.js";
import * as updatepath from "../updatepath/index.js";
import * as monitor from "./index.js";

type SelectorInit = Parameters<typeof create<typeof MonitorScopeSelectorSchema>>[1];

/** A subscription driven by hand: `next()` resolves with the next event. */
function subscribe(m: monitor.ConnectionMonitor, selector: SelectorInit = {}) {
  const ac = new AbortController();
  const it = m
    .monitorConnections(CallContext.create({ signal: ac.signal }), create(MonitorScopeSelectorSchema, selector))
    [Symbol.asyncIterator]();
  return {
    next: async (): Promise<ConnectionEvent> => {
      const r = await it.next();
      if (r.done) throw new Error("stream ended");
      return r.value;
    },
    it,
    abort: () => ac.abort(),
  };
}

const ids = (ev: ConnectionEvent): string[] => Object.keys(ev.connections).sort();

const request = (id: string, ns = "ns-1") =>
  create(NetworkServiceRequestSchema, {
    connection: { id, networkService: ns, path: { index: 0, pathSegments: [{ name: "nsc", id, token: `tok-${id}` }] } },
  });

describe("monitor", () => {
  let m: monitor.ConnectionMonitor;
  beforeEach(() => {
    m = new monitor.ConnectionMonitor();
  });
  afterEach(() => {
    expect(m.subscribers, "open subscriptions").to.equal(0);
  });

  const server = () => handler(chain(updatepath.newServer("nse"), begin.newServer(), monitor.newServer(m)));

  it("initial state transfer: empty when there are no connections", async () => {
    const s = subscribe(m);
    const ev = await s.next();
    expect(ev.type).to.equal(ConnectionEventType.INITIAL_STATE_TRANSFER);
    expect(ids(ev)).to.deep.equal([]);
    await s.it.return?.();
  });

  it("initial state transfer: all existing connections", async () => {
    const h = server();
    const a = await h.request(CallContext.create(), request("a"));
    const b = await h.request(CallContext.create(), request("b"));
    const s = subscribe(m);
    const ev = await s.next();
    expect(ev.type).to.equal(ConnectionEventType.INITIAL_STATE_TRANSFER);
    const segIds = Object.values(ev.connections)
      .map((c) => c.path?.pathSegments[0]?.id)
      .sort();
    expect(segIds).to.deep.equal(["a", "b"]);
    await s.it.return?.();
    await h.close(CallContext.create(), a);
    await h.close(CallContext.create(), b);
  });

  it("UPDATE on Request, then DELETE on Close", async () => {
    const h = server();
    const s = subscribe(m);
    await s.next();
    const r = request("a");
    if (r.connection) r.connection.state = State.RESELECT_REQUESTED;
    const conn = await h.request(CallContext.create(), r);
    const up = await s.next();
    expect(up.type).to.equal(ConnectionEventType.UPDATE);
    const published = Object.values(up.connections)[0] as Connection;
    expect(published.path?.pathSegments.map((x) => x.name)).to.deep.equal(["nsc", "nse"]);
    expect(published.state).to.equal(State.UP);
    expect(published.path?.index).to.equal(1);
    await h.close(CallContext.create(), conn);
    const del = await s.next();
    expect(del.type).to.equal(ConnectionEventType.DELETE);
    expect(ids(del)).to.deep.equal(ids(up));
    expect(m.connections()).to.have.length(0);
    s.abort();
    expect((await s.it.next()).done).to.equal(true);
  });

  it("setState marks a connection DOWN for subscribers", async () => {
    const h = server();
    const conn = await h.request(CallContext.create(), request("a"));
    const [stored] = m.connections();
    const s = subscribe(m);
    await s.next();
    expect(m.setState(stored?.id ?? "", State.DOWN)).to.equal(true);
    const ev = await s.next();
    expect(ev.type).to.equal(ConnectionEventType.UPDATE);
    expect(Object.values(ev.connections)[0]?.state).to.equal(State.DOWN);
    expect(m.setState("unknown", State.DOWN)).to.equal(false);
    await s.it.return?.();
    await h.close(CallContext.create(), conn);
    expect(m.connections()).to.have.length(0);
  });

  it("selectors: network services, contiguous segment sub-lists, wildcard fields", () => {
    const conn = create(ConnectionSchema, {
      id: "x",
      networkService: "ns-1",
      path: {
        pathSegments: [
          { name: "nsc", id: "1", token: "t1" },
          { name: "nsmgr", id: "2", token: "t2" },
          { name: "nse", id: "3", token: "t3" },
        ],
      },
    });
    const sel = (s: SelectorInit) => monitor.matchesSelector(conn, create(MonitorScopeSelectorSchema, s));
    expect(sel({})).to.equal(true);
    expect(sel({ networkServices: ["ns-1", "ns-2"] })).to.equal(true);
    expect(sel({ networkServices: ["ns-2"] })).to.equal(false);
    expect(sel({ pathSegments: [{ id: "2", name: "nsmgr" }] })).to.equal(true);
    expect(sel({ pathSegments: [{ id: "2", name: "nse" }] })).to.equal(false);
    expect(sel({ pathSegments: [{ id: "1" }, { id: "2" }] })).to.equal(true);
    expect(sel({ pathSegments: [{ id: "1" }, { id: "3" }] }), "not contiguous").to.equal(false);
    expect(sel({ pathSegments: [{ id: "2" }, { id: "1" }] }), "wrong order").to.equal(false);
    expect(sel({ pathSegments: [{}, {}, {}] })).to.equal(true);
    expect(sel({ pathSegments: [{}, {}, {}, {}] }), "longer than the path").to.equal(false);
    expect(sel({ pathSegments: [{ token: "t3" }] })).to.equal(true);
    expect(sel({ pathSegments: [{ token: "t9" }] })).to.equal(false);
    expect(sel({ networkServices: ["ns-1"], pathSegments: [{ name: "nse" }] })).to.equal(true);
    expect(sel({ networkServices: ["ns-2"], pathSegments: [{ name: "nse" }] })).to.equal(false);
  });

  it("a subscriber only gets the connections its selector matches", async () => {
    const h = server();
    const onlyA = subscribe(m, { pathSegments: [{ id: "a", name: "nsc" }] });
    const onlyNs2 = subscribe(m, { networkServices: ["ns-2"] });
    expect(ids(await onlyA.next())).to.deep.equal([]);
    expect(ids(await onlyNs2.next())).to.deep.equal([]);
    await h.request(CallContext.create(), request("b"));
    await h.request(CallContext.create(), request("c", "ns-2"));
    await h.request(CallContext.create(), request("a"));
    const evA = await onlyA.next();
    expect(Object.values(evA.connections).map((c) => c.path?.pathSegments[0]?.id)).to.deep.equal(["a"]);
    const evNs2 = await onlyNs2.next();
    expect(Object.values(evNs2.connections).map((c) => c.networkService)).to.deep.equal(["ns-2"]);
    onlyA.abort();
    onlyNs2.abort();
    expect((await onlyA.it.next()).done).to.equal(true);
    expect((await onlyNs2.it.next()).done).to.equal(true);
    // Close as the client would: with its own index.
    for (const c of m.connections()) {
      if (c.path) c.path.index = 0;
      c.id = c.path?.pathSegments[0]?.id ?? c.id;
      await h.close(CallContext.create(), c);
    }
    expect(m.connections()).to.have.length(0);
  });

  it("a slow subscriber is ended with ResourceExhausted after its buffered events; others keep going", async () => {
    m = new monitor.ConnectionMonitor({ bufferSize: 3 });
    const slow = subscribe(m);
    const fast = subscribe(m);
    await slow.next();
    await fast.next();
    const conn = create(ConnectionSchema, { id: "a", networkService: "ns-1" });
    for (let i = 0; i < 5; i++) {
      m.update(conn);
      expect((await fast.next()).type).to.equal(ConnectionEventType.UPDATE);
    }
    for (let i = 0; i < 3; i++) expect((await slow.next()).type).to.equal(ConnectionEventType.UPDATE);
    try {
      await slow.next();
      expect.fail("expected ResourceExhausted");
    } catch (err) {
      expect(isStatusError(err, Code.ResourceExhausted), String(err)).to.equal(true);
      expect((err as Error).message).to.contain("fell behind");
    }
    expect(m.subscribers).to.equal(1);
    m.delete(conn);
    expect((await fast.next()).type).to.equal(ConnectionEventType.DELETE);
    fast.abort();
    expect((await fast.it.next()).done).to.equal(true);
  });

  it("an aborted subscription ends even while waiting for an event", async () => {
    const s = subscribe(m);
    await s.next();
    const waiting = s.it.next();
    s.abort();
    expect((await waiting).done).to.equal(true);
  });
});
