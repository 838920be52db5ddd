/**
 * MonitorConnections authorize policy: a peer may only watch connections it created, so monitor streams
 * do not leak other workloads' connections.
 */
import type { Policy } from "./policy.js";

/** Input of the monitor policy, as upstream's monitor authorize builds it (docs/wire-compatibility.md#policies). */
export interface MonitorPolicyInput {
  /** SPIFFE ID → ids of the connections requested by that identity. */
  spiffeIdConnectionMap: ReadonlyMap<string, string[]>;
  /** Connection ids named by the monitor selector's path segments. */
  selectorConnectionIds: string[];
  /** SPIFFE ID of the monitoring peer. */
  serviceSpiffeId: string;
}

/**
 * Allowed when the selector names at least one connection and at least one of them was created by the
 * monitoring peer (upstream `service_connection`: non-empty intersection).
 */
export const monitorServiceConnection: Policy<MonitorPolicyInput> = {
  name: "service_connection",
  async check({ spiffeIdConnectionMap, selectorConnectionIds, serviceSpiffeId }) {
    if (selectorConnectionIds.length === 0) return "the selector names no connection id";
    const own = spiffeIdConnectionMap.get(serviceSpiffeId) ?? [];
    if (own.length === 0) return `${JSON.stringify(serviceSpiffeId)} owns no connections`;
    if (!selectorConnectionIds.some((id) => own.includes(id))) {
      return `${JSON.stringify(serviceSpiffeId)} owns none of the selected connections ${JSON.stringify(selectorConnectionIds)}`;
    }
    return undefined;
  },
};
