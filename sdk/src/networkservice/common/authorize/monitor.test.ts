/** authorize (MonitorConnections): only the identity that requested a connection may watch it. */

import { create } from "@bufbuild/protobuf";
import {
  type ConnectionEvent,
  ConnectionEventType,
  ConnectionSchema,
  type MonitorScopeSelector,
  MonitorScopeSelectorSchema,
} from "@nsm-ts/api/networkservice";
import { CallContext, type PeerInfo } from "@nsm-ts/base/context";
import { ephemeralIdentity } from "@nsm-ts/base/identity";
import { Code, StatusError } from "@nsm-ts/base/status";
import { createTokenGenerator } from "@nsm-ts/base/token";
import { expect } from "chai";
import { ConnectionMonitor } from "../monitor/index.js";
import * as authorize from "./index.js";

const ALICE = "spiffe://test.nsm-ts/alice";
const BOB = "spiffe://test.nsm-ts/bob";

async function firstEvent(stream: AsyncIterable<ConnectionEvent>): Promise<ConnectionEvent> {
  for await (const ev of stream) return ev;
  throw new Error("stream ended without an event");
}

describe("authorize monitor server", () => {
  let monitor: ConnectionMonitor;

  beforeEach(async () => {
    monitor = new ConnectionMonitor();
    const tokenOf = async (id: string): Promise<string> =>
      (await createTokenGenerator(await ephemeralIdentity(id), { maxTokenLifetimeMs: 60_000 })()).token;
    // Connections as this hop (index 1) holds them: segment 0 carries the caller's per-RPC token.
    for (const [owner, segId] of [
      [ALICE, "a-1"],
      [ALICE, "a-2"],
      [BOB, "b-1"],
    ] as const) {
      monitor.update(
        create(ConnectionSchema, {
          id: `${segId}-here`,
          path: {
            index: 1,
            pathSegments: [
              { name: "nsc", id: segId, token: await tokenOf(owner) },
              { name: "nse", id: `${segId}-here` },
            ],
          },
        }),
      );
    }
  });

  afterEach(() => expect(monitor.subscribers, "monitor streams left open").to.equal(0));

  const ctxAs = (peer: PeerInfo | undefined): CallContext => CallContext.create(peer ? { peer } : {});
  const selector = (...ids: string[]): MonitorScopeSelector =>
    create(MonitorScopeSelectorSchema, { pathSegments: ids.map((id) => ({ id })) });

  it("maps each caller's SPIFFE ID (token sub of the previous segment) to its segment ids", () => {
    const map = authorize.spiffeIdConnectionMap(monitor.connections());
    expect(Object.fromEntries(map)).to.deep.equal({ [ALICE]: ["a-1", "a-2"], [BOB]: ["b-1"] });
  });

  it("lets the owner watch, refuses others, peers without a SPIFFE ID and id-less selectors of peers owning nothing", async () => {
    const srv = authorize.newMonitorServer(monitor);
    const ac = new AbortController();
    const own = await firstEvent(
      srv.monitorConnections(CallContext.create({ peer: { spiffeId: ALICE }, signal: ac.signal }), selector("a-1")),
    );
    ac.abort();
    expect(own.type).to.equal(ConnectionEventType.INITIAL_STATE_TRANSFER);
    expect(Object.keys(own.connections)).to.deep.equal(["a-1-here"]);

    for (const [peer, sel] of [
      [{ spiffeId: BOB }, selector("a-1")],
      [{ address: "127.0.0.1:1" }, selector("a-1")],
      [{ spiffeId: "spiffe://test.nsm-ts/carol" }, selector()],
    ] as const) {
      const err = await firstEvent(srv.monitorConnections(ctxAs(peer), sel)).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).to.be.instanceOf(StatusError);
      expect((err as StatusError).code).to.equal(Code.PermissionDenied);
      expect((err as StatusError).message).to.match(/^authorize-monitor: policy service_connection denied/);
    }
  });

  it("admits a selector naming no id (empty, or a name only: heal's shared stream) as the owner's own connections", async () => {
    const srv = authorize.newMonitorServer(monitor);
    for (const sel of [selector(), create(MonitorScopeSelectorSchema, { pathSegments: [{ name: "nsc" }] })]) {
      const ac = new AbortController();
      const ev = await firstEvent(srv.monitorConnections(CallContext.create({ peer: { spiffeId: ALICE }, signal: ac.signal }), sel));
      ac.abort();
      expect(ev.type).to.equal(ConnectionEventType.INITIAL_STATE_TRANSFER);
      // Bob's connection also carries the segment name "nsc", but the filter leaves Alice her own only.
      expect(Object.keys(ev.connections).sort()).to.deep.equal(["a-1-here", "a-2-here"]);
    }
  });

  it("does not check in-process calls (no peer)", async () => {
    const ac = new AbortController();
    const ev = await firstEvent(
      authorize.newMonitorServer(monitor).monitorConnections(CallContext.create({ signal: ac.signal }), selector("b-1")),
    );
    ac.abort();
    expect(Object.keys(ev.connections)).to.deep.equal(["b-1-here"]);
  });
});
