/**
 * Policies over a connection's path (NetworkService authorize, client and server). They mirror upstream's
 * `common/`, `server/` and `client/` Rego rules. In the insecure dev mode
 * (docs/wire-compatibility.md#insecure-dev-mode) signatures and audiences are not enforced — the two
 * `*_token_signed` policies and `tokens_chained` pass — but tokens must still be well-formed and unexpired.
 */
import type { KeyObject } from "node:crypto";
import type { Path } from "@nsm-ts/api/networkservice";
import type { PeerInfo } from "../identity/index.js";
import { decodeToken, formatExpires, type TokenClaims, verifyToken } from "../token/index.js";
import { firstSegmentCaller } from "./caller.js";
import type { Policy } from "./policy.js";

/** Input of the path policies. */
export interface PathPolicyInput {
  /** The connection path with the index of the hop doing the check. */
  path: Path;
  /** The other end of the gRPC connection: previous hop on a server, next hop on a client. */
  peer?: PeerInfo & { publicKey?: KeyObject };
  /** Current time in ms (from the context's clock). */
  now: number;
  /** True in dev mode: skip signature and audience checks. */
  insecure: boolean;
  /**
   * Whether a peer (its SPIFFE ID) may forward a path that began with another workload (`first_segment_caller`);
   * default `isMeshHopId` (an nsmgr or forwarder).
   */
  isTrustedHop?: (spiffeId: string) => boolean;
}

function claimsOf(token: string): TokenClaims | string {
  try {
    return decodeToken(token);
  } catch (err) {
    return (err as Error).message;
  }
}

function segmentName(path: Path, i: number): string {
  const name = path.pathSegments[i]?.name;
  return name ? `${i} (${name})` : String(i);
}

/** Every segment's token decodes as a JWT (an empty path is fine). Upstream `tokens_valid`. */
export const tokensValid: Policy<PathPolicyInput> = {
  name: "tokens_valid",
  async check({ path }) {
    for (let i = 0; i < path.pathSegments.length; i++) {
      const c = claimsOf(path.pathSegments[i]?.token ?? "");
      if (typeof c === "string") return `token of path segment ${segmentName(path, i)} is invalid: ${c}`;
    }
    return undefined;
  },
};

/**
 * Why `claims` is not valid at `now` (ms), or undefined when it is: `exp` must be present and in the future,
 * `nbf` (when present) reached. Only the JWT claims count, never the `expires` metadata or field.
 */
export function tokenTimeProblem(claims: TokenClaims, now: number): string | undefined {
  if (claims.exp === undefined) return "has no exp";
  if (now >= claims.exp * 1000) return `expired at ${formatExpires(new Date(claims.exp * 1000))}`;
  if (claims.nbf !== undefined && now < claims.nbf * 1000) {
    return `is not valid before ${formatExpires(new Date(claims.nbf * 1000))}`;
  }
  return undefined;
}

/**
 * Every segment's token it is given is alive: it has an `exp`, `now < exp`, and `now >= nbf` when it has one
 * (upstream `tokens_expired`, plus `nbf`). A server passes the left side of the path (the caller's token and
 * every earlier segment's); Close skips this policy (see the authorize element) so cleanup still works.
 */
export const tokensExpired: Policy<PathPolicyInput> = {
  name: "tokens_expired",
  async check({ path, now }) {
    for (let i = 0; i < path.pathSegments.length; i++) {
      const c = claimsOf(path.pathSegments[i]?.token ?? "");
      if (typeof c === "string") return `token of path segment ${segmentName(path, i)} is invalid: ${c}`;
      const problem = tokenTimeProblem(c, now);
      if (problem !== undefined) return `token of path segment ${segmentName(path, i)} ${problem}`;
    }
    return undefined;
  },
};

/** For every consecutive pair, `aud` of token i contains `sub` of token i+1. Upstream `tokens_chained`. */
export const tokensChained: Policy<PathPolicyInput> = {
  name: "tokens_chained",
  async check({ path, insecure }) {
    if (insecure) return undefined;
    const segs = path.pathSegments;
    for (let i = 0; i + 1 < segs.length; i++) {
      const a = claimsOf(segs[i]?.token ?? "");
      const b = claimsOf(segs[i + 1]?.token ?? "");
      if (typeof a === "string") return `token of path segment ${segmentName(path, i)} is invalid: ${a}`;
      if (typeof b === "string") return `token of path segment ${segmentName(path, i + 1)} is invalid: ${b}`;
      if (b.sub === undefined || !a.aud.includes(b.sub)) {
        return `aud ${JSON.stringify(a.aud)} of segment ${segmentName(path, i)} does not contain sub ${JSON.stringify(b.sub ?? "")} of segment ${segmentName(path, i + 1)}`;
      }
    }
    return undefined;
  },
};

function peerKey(input: PathPolicyInput): KeyObject | undefined {
  return input.peer?.publicKey ?? input.peer?.certificate?.publicKey;
}

async function signedByPeer(input: PathPolicyInput, i: number, which: string): Promise<string | undefined> {
  if (input.insecure) return undefined;
  const seg = input.path.pathSegments[i];
  if (i < 0 || seg === undefined) return `path index ${input.path.index} has no ${which} segment`;
  const key = peerKey(input);
  if (key === undefined) return "no peer certificate to verify against";
  if (!(await verifyToken(seg.token, key))) {
    return `token of path segment ${segmentName(input.path, i)} is not signed by the peer${input.peer?.spiffeId ? ` ${input.peer.spiffeId}` : ""}`;
  }
  return undefined;
}

/** Server side: the token at `index-1` is ES256-signed by the peer's certificate key. Upstream `prev_token_signed`. */
export const prevTokenSigned: Policy<PathPolicyInput> = {
  name: "prev_token_signed",
  check: (input) => signedByPeer(input, input.path.index - 1, "previous"),
};

/** Client side: the token at `index+1` is ES256-signed by the server's certificate key. Upstream `next_token_signed`. */
export const nextTokenSigned: Policy<PathPolicyInput> = {
  name: "next_token_signed",
  check: (input) => signedByPeer(input, input.path.index + 1, "next"),
};

/** The server-side default set: upstream `DefaultServerPolicies` plus our `first_segment_caller`. */
export const defaultServerPolicies: Policy<PathPolicyInput>[] = [
  tokensValid,
  prevTokenSigned,
  firstSegmentCaller,
  tokensExpired,
  tokensChained,
];

/** The client-side default set (upstream `DefaultClientPolicies`). */
export const defaultClientPolicies: Policy<PathPolicyInput>[] = [tokensValid, nextTokenSigned, tokensExpired, tokensChained];
