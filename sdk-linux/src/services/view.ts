/**
 * The resolved view of a service as a data-plane node programs it: frontends (ServiceIP, port, protocol,
 * balancing policy) and the effective backends, after the control plane merged its sources and applied local
 * redirects. It mirrors `nsmts.services.v1.ResolvedService` in plain TypeScript so the data plane does not
 * depend on the API's generated code.
 */

/** Transport protocol of a frontend or backend port; `any` for an address-only service (every port and protocol). */
export type ServiceProtocol = "tcp" | "udp" | "sctp" | "any";

/** How a frontend picks a backend for a new flow. */
export type BalancingPolicy = "round-robin" | "closest" | "consistent-hash";

/** New flows go only to `healthy` backends; established flows are left alone. */
export type BackendHealth = "healthy" | "unhealthy" | "draining";

/** One ServiceIP and port. */
export interface ServiceFrontend {
  /** The ServiceIP (IPv4 or IPv6). */
  readonly address: string;
  /** 1..65535, or 0 with protocol `any`: an address-only service (only the address is translated). */
  readonly port: number;
  readonly protocol: ServiceProtocol;
  readonly policy: BalancingPolicy;
  /** The service port it belongs to; backends with the same `portName` and `protocol` serve it. */
  readonly portName: string;
}

/** One effective backend of one service port. */
export interface ServiceBackend {
  /** Unique within the service (for messages). */
  readonly name: string;
  readonly address: string;
  /** 0 for an address-only service. */
  readonly port: number;
  readonly protocol: ServiceProtocol;
  readonly portName: string;
  /** Node the instance runs on (for `closest`). */
  readonly node: string;
  /** Zone of that node (for `closest`). */
  readonly zone: string;
  /** Relative weight 1..65535. */
  readonly weight: number;
  readonly health: BackendHealth;
}

/** A service as one node should program it. */
export interface ServiceView {
  readonly name: string;
  readonly frontends: readonly ServiceFrontend[];
  readonly backends: readonly ServiceBackend[];
  /** Consistent-hash frontends hash the client address only (session affinity) when this is above 0. */
  readonly sessionAffinitySeconds?: number;
  /** The control plane's revision of this view (reported back with the status). */
  readonly revision: string;
}

/** Where the client is, for `closest`. */
export interface Locality {
  readonly node: string;
  readonly zone: string;
}
