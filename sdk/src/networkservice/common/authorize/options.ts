import type { PathPolicyInput, Policy } from "@nsm-ts/base/policy";

/** Options of authorize (both sides). */
export interface AuthorizeOptions {
  /** Policies to enforce, in order; default `defaultServerPolicies` / `defaultClientPolicies`. */
  policies?: readonly Policy<PathPolicyInput>[];
  /**
   * The insecure dev mode (no certificates; docs/wire-compatibility.md#insecure-dev-mode): passed to the policies,
   * which then skip signature and audience checks but still require well-formed, unexpired tokens. Default false.
   */
  insecure?: boolean;
  /**
   * Server side: whether a peer (its SPIFFE ID) is a trusted hop, one that may forward a path that began with
   * another workload (policy `first_segment_caller`); default `isMeshHopId` from `@nsm-ts/base/policy` (an nsmgr
   * or forwarder). Programs set it with `NSM_TRUSTED_HOPS`.
   */
  trustedHops?: (spiffeId: string) => boolean;
}

/** The other end of the gRPC connection, as the path policies want it. */
export type PolicyPeer = NonNullable<PathPolicyInput["peer"]>;
