/**
 * vl3mtu: the smallest MTU in a vL3 network wins, as upstream's `connectioncontext/mtu/vl3mtu`. Every connection
 * of a vL3 endpoint (its clients, server side; its peers, client side) starts at the network's current minimum
 * (9 000, a jumbo frame, until a smaller one is seen); a connection that comes back with a smaller
 * `context.MTU` (a VXLAN leg clamps it to the underlay MTU − 50) lowers the minimum, and the endpoint's other
 * connections are told to refresh (`onLowered`, e.g. REFRESH_REQUESTED through the endpoint's monitor), which
 * brings them down to it.
 *
 * Reads/writes: `context.MTU`. Placement: endpoint `additional` (server) and the peer client's `additional`
 * (client), sharing one `Vl3MtuState` so both sides see one minimum.
 */
import { create } from "@bufbuild/protobuf";
import { ConnectionContextSchema } from "@nsm-ts/api/networkservice";
import { connectionOf } from "../../core/chain.js";
import type { NetworkServiceElement } from "../../core/types.js";

/** Upstream's starting point: a jumbo frame. */
export const JUMBO_FRAME_SIZE = 9000;

/** The minimum MTU of one vL3 network and the connections that follow it. */
export class Vl3MtuState {
  private min: number;
  private readonly conns = new Set<string>();
  private readonly listeners = new Set<(connIds: string[], mtu: number) => void>();

  constructor(initialMtu = JUMBO_FRAME_SIZE) {
    this.min = initialMtu;
  }

  /** The network's MTU now. */
  get mtu(): number {
    return this.min;
  }

  /**
   * Calls `fn` with the other connections' ids and the new minimum whenever a connection lowers it; returns the
   * unsubscribe function.
   */
  onLowered(fn: (connIds: string[], mtu: number) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  /** @internal Records `connId` at `mtu`; lowers the minimum and tells the listeners when it is smaller. */
  seen(connId: string, mtu: number): void {
    this.conns.add(connId);
    if (mtu === 0 || mtu >= this.min) return;
    this.min = mtu;
    const others = [...this.conns].filter((id) => id !== connId);
    for (const fn of [...this.listeners]) fn(others, mtu);
  }

  /** @internal Forgets a closed connection. */
  forget(connId: string): void {
    this.conns.delete(connId);
  }
}

/** Creates the state shared by a vL3 endpoint's `vl3mtu` elements. */
export function createVl3MtuState(initialMtu = JUMBO_FRAME_SIZE): Vl3MtuState {
  return new Vl3MtuState(initialMtu);
}

function element(name: string, state: Vl3MtuState): NetworkServiceElement {
  return {
    name,
    async request(ctx, req, next) {
      const conn = connectionOf(req);
      conn.context ??= create(ConnectionContextSchema);
      if (conn.context.MTU === 0 || conn.context.MTU > state.mtu) conn.context.MTU = state.mtu;
      const resp = await next.request(ctx, req);
      const mtu = resp.context?.MTU ?? 0;
      if (mtu !== 0 && mtu < state.mtu) ctx.log.info({ connId: resp.id, mtu, was: state.mtu }, `${name}: the vL3 network's MTU went down`);
      state.seen(resp.id, mtu);
      return resp;
    },
    async close(ctx, conn, next) {
      try {
        await next.close(ctx, conn);
      } finally {
        state.forget(conn.id);
      }
    },
  };
}

/** The endpoint side: clients of a vL3 endpoint get the network's MTU. */
export function newServer(state: Vl3MtuState = createVl3MtuState()): NetworkServiceElement {
  return element("vl3mtu", state);
}

/** The client side: a vL3 endpoint's connections to its peers get, and lower, the network's MTU. */
export function newClient(state: Vl3MtuState = createVl3MtuState()): NetworkServiceElement {
  return element("vl3mtu-client", state);
}
