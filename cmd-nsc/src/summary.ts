/**
 * A connection reduced to what an operator reads: path segment names, addresses, mechanism, state and expiry.
 * The client logs it as the `connection` field, and `npm start` and the CLI print it; one shape for all.
 */
import type { Connection } from "@nsm-ts/api/networkservice";
import { State } from "@nsm-ts/api/networkservice";

/** One hop of the connection's path. */
export interface SegmentSummary {
  name: string;
  id: string;
  /** When this hop's token expires (ISO 8601), if set. */
  expires?: string;
}

/** The readable form of a connection. */
export interface ConnectionSummary {
  id: string;
  networkService: string;
  networkServiceEndpointName: string;
  state: string;
  mechanism: string;
  /** Mechanism parameters (interface name, netns, …). */
  mechanismParameters: Record<string, string>;
  /** Client-side addresses. */
  srcIpAddrs: string[];
  /** Endpoint-side addresses. */
  dstIpAddrs: string[];
  labels: Record<string, string>;
  path: SegmentSummary[];
}

/** Summarises a connection for logs and displays. */
export function summarize(conn: Connection): ConnectionSummary {
  const ip = conn.context?.ipContext;
  return {
    id: conn.id,
    networkService: conn.networkService,
    networkServiceEndpointName: conn.networkServiceEndpointName,
    state: State[conn.state] ?? String(conn.state),
    mechanism: conn.mechanism?.type ?? "",
    mechanismParameters: { ...(conn.mechanism?.parameters ?? {}) },
    srcIpAddrs: [...(ip?.srcIpAddrs ?? [])],
    dstIpAddrs: [...(ip?.dstIpAddrs ?? [])],
    labels: { ...conn.labels },
    path: (conn.path?.pathSegments ?? []).map((s) => ({
      name: s.name,
      id: s.id,
      ...(s.expires ? { expires: new Date(Number(s.expires.seconds) * 1000 + Math.floor(s.expires.nanos / 1e6)).toISOString() } : {}),
    })),
  };
}
