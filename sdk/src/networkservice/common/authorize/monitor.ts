/**
 * authorize (MonitorConnections server): a peer may only watch connections it created (upstream
 * `monitor/service_connection`), so a monitor stream does not leak other workloads' connections. Who
 * created what is read from the connections the server holds: the caller of a connection is the `sub` of
 * the token in the segment before ours (the caller's per-RPC token, put there by `updatetoken` and checked
 * by `authorize` when the Request came in), and it owns that segment's id — the id its heal selects on.
 * The watcher is the SPIFFE ID of its TLS certificate; without one (no mTLS) it owns nothing and is refused.
 * Beyond upstream's rule, which admits a stream when the selector names one own connection, every event is
 * filtered: a watcher receives only connections whose path, up to this hop, carries its identity (the `sub`
 * of a segment's token), so no selector shows it another workload's connections or their tokens
 * (docs/wire-compatibility.md#monitor-selector). Because of that filter, a selector that names no connection id
 * (heal's shared stream selects by our segment's name only; `cmd-nsc watch connections` selects everything) is
 * admitted as naming the watcher's own connections here, where upstream refuses it; a watcher that owns none is
 * still refused. Calls without a peer (in-process, not from the network) are
 * not checked, as on the NetworkService side.
 *
 * Reads: `ctx.peer.spiffeId`, the selector's path segment ids, the held connections. Placement: wraps the
 * MonitorConnections server of a chain (e.g. an endpoint's ConnectionMonitor).
 */
import { create } from "@bufbuild/protobuf";
import {
  type Connection,
  type ConnectionEvent,
  ConnectionEventSchema,
  ConnectionEventType,
  type MonitorScopeSelector,
} from "@nsm-ts/api/networkservice";
import { enforce, type MonitorPolicyInput, monitorServiceConnection, type Policy } from "@nsm-ts/base/policy";
import { decodeToken } from "@nsm-ts/base/token";
import type { MonitorConnectionServer } from "../../core/types.js";

const ELEMENT = "authorize-monitor";

/** A MonitorConnections server that can also list the connections it holds (a ConnectionMonitor does). */
export interface ConnectionSource extends MonitorConnectionServer {
  /** The connections currently held, each with this hop's path index. */
  connections(): Connection[];
}

/** Options of `newMonitorServer`. */
export interface MonitorAuthorizeOptions {
  /** Policies over the monitor input, in order; default `[monitorServiceConnection]`. */
  policies?: readonly Policy<MonitorPolicyInput>[];
}

/** SPIFFE ID → ids of the caller segments of the connections it requested through this hop. */
export function spiffeIdConnectionMap(conns: Iterable<Connection>): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const conn of conns) {
    const path = conn.path;
    if (!path || path.index === 0) continue;
    const prev = path.pathSegments[path.index - 1];
    if (!prev?.token || !prev.id) continue;
    let sub: string | undefined;
    try {
      sub = decodeToken(prev.token).sub;
    } catch {
      continue;
    }
    if (sub === undefined) continue;
    const ids = out.get(sub) ?? [];
    if (!ids.includes(prev.id)) ids.push(prev.id);
    out.set(sub, ids);
  }
  return out;
}

/** True when a token of the segments before this hop's (index) names `spiffeId` as its `sub`. */
export function pathCarries(conn: Connection, spiffeId: string): boolean {
  const path = conn.path;
  if (!path) return false;
  for (let i = 0; i < path.index && i < path.pathSegments.length; i++) {
    try {
      if (decodeToken(path.pathSegments[i]?.token ?? "").sub === spiffeId) return true;
    } catch {
      // an unreadable token names nobody
    }
  }
  return false;
}

/** `ev` with only the connections `spiffeId` may see, or undefined when an update is left with none. */
function visible(ev: ConnectionEvent, spiffeId: string): ConnectionEvent | undefined {
  const connections: Record<string, Connection> = {};
  for (const [k, c] of Object.entries(ev.connections)) if (pathCarries(c, spiffeId)) connections[k] = c;
  if (Object.keys(connections).length === 0 && ev.type !== ConnectionEventType.INITIAL_STATE_TRANSFER) return undefined;
  return create(ConnectionEventSchema, { type: ev.type, connections });
}

/** Wraps `inner` so that each MonitorConnections call is authorized first (`PermissionDenied` naming the policy). */
export function newMonitorServer(inner: ConnectionSource, opts: MonitorAuthorizeOptions = {}): MonitorConnectionServer {
  const policies = opts.policies ?? [monitorServiceConnection];
  return {
    monitorConnections(ctx, selector: MonitorScopeSelector): AsyncIterable<ConnectionEvent> {
      return (async function* () {
        if (ctx.peer) {
          const owners = spiffeIdConnectionMap(inner.connections());
          const named = selector.pathSegments.map((s) => s.id).filter((id) => id !== "");
          const input: MonitorPolicyInput = {
            spiffeIdConnectionMap: owners,
            // A selector that names no id (heal's shared stream, an operator's watch) asks for the watcher's own
            // connections; every event below is filtered to those, so it counts as naming them.
            selectorConnectionIds: named.length > 0 ? named : (owners.get(ctx.peer.spiffeId ?? "") ?? []),
            serviceSpiffeId: ctx.peer.spiffeId ?? "",
          };
          await enforce(policies, input, ELEMENT);
          const watcher = ctx.peer.spiffeId ?? "";
          for await (const ev of inner.monitorConnections(ctx, selector)) {
            const out = visible(ev, watcher);
            if (out) yield out;
          }
          return;
        }
        yield* inner.monitorConnections(ctx, selector);
      })();
    },
  };
}
