/**
 * authorize (MonitorConnections server): a peer may only watch connections it created (upstream
 * `monitor/service_connection`), so a monitor stream does not leak other workloads' connections. Who
 * created what is read from the connections the server holds: the caller of a connection is the `sub` of
 * the token in the segment before ours (the caller's per-RPC token, put there by `updatetoken` and checked
 * by `authorize` when the Request came in), and it owns that segment's id — the id its heal selects on.
 * The watcher is the SPIFFE ID of its TLS certificate; without one (no mTLS) it owns nothing and is refused.
 * Calls without a peer (in-process, not from the network) are not checked, as on the NetworkService side.
 *
 * Reads: `ctx.peer.spiffeId`, the selector's path segment ids, the held connections. Placement: wraps the
 * MonitorConnections server of a chain (e.g. an endpoint's ConnectionMonitor).
 */
import type { Connection, ConnectionEvent, MonitorScopeSelector } from "@nsm-ts/api/networkservice";
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

/** Wraps `inner` so that each MonitorConnections call is authorized first (`PermissionDenied` naming the policy). */
export function newMonitorServer(inner: ConnectionSource, opts: MonitorAuthorizeOptions = {}): MonitorConnectionServer {
  const policies = opts.policies ?? [monitorServiceConnection];
  return {
    monitorConnections(ctx, selector: MonitorScopeSelector): AsyncIterable<ConnectionEvent> {
      return (async function* () {
        if (ctx.peer) {
          const input: MonitorPolicyInput = {
            spiffeIdConnectionMap: spiffeIdConnectionMap(inner.connections()),
            selectorConnectionIds: selector.pathSegments.map((s) => s.id).filter((id) => id !== ""),
            serviceSpiffeId: ctx.peer.spiffeId ?? "",
          };
          await enforce(policies, input, ELEMENT);
        }
        yield* inner.monitorConnections(ctx, selector);
      })();
    },
  };
}
