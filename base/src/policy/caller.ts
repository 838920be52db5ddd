/**
 * The first-segment rule (ours; upstream has no such Rego file): a server's caller speaks only for itself.
 * Without it a workload could send a path whose earlier segments claim another workload (a token it signed with
 * its own key, `sub` set to the victim), and every hop after would take that segment for the connection's origin.
 */
import { spiffeIdOf } from "../identity/index.js";
import { decodeToken } from "../token/index.js";
import type { PathPolicyInput } from "./path.js";
import type { Policy } from "./policy.js";

/**
 * The default trusted-hop rule: the mesh's own forwarding programs, i.e. a SPIFFE ID whose last path component
 * starts with `nsmgr` or `forwarder` (`spiffe://td/nsmgr-node1`, `spiffe://td/ns/nsm-system/sa/forwarder-vpp`).
 * mTLS already limits peers to the trust bundle; the name says which workload forwards for others.
 */
export function isMeshHopId(spiffeId: string): boolean {
  const m = /^spiffe:\/\/[^/]+\/(.*)$/.exec(spiffeId);
  const last = m?.[1]?.split("/").at(-1) ?? "";
  return last.startsWith("nsmgr") || last.startsWith("forwarder");
}

/** Compiles SPIFFE ID patterns (`*` matches any run of characters) into a rule such as `isTrustedHop`. */
export function spiffeIdMatcher(patterns: readonly string[]): (spiffeId: string) => boolean {
  const res = patterns.map(
    (p) =>
      new RegExp(
        `^${p
          .split("*")
          .map((x) => x.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"))
          .join(".*")}$`,
      ),
  );
  return (id) => res.some((r) => r.test(id));
}

function peerIdOf(input: PathPolicyInput): string | undefined {
  const cert = input.peer?.certificate;
  return input.peer?.spiffeId ?? (cert === undefined ? undefined : spiffeIdOf(cert));
}

/**
 * Server side: the caller's segment (`index-1`) carries a token whose `sub` is the peer's SPIFFE ID, and it is
 * the first segment unless the peer is a trusted hop (`input.isTrustedHop`, default `isMeshHopId`): only an
 * nsmgr or forwarder forwards a path that began with someone else. A path where we are the first segment
 * claims nobody (`prev_token_signed` refuses it in the secure mode). Passes in the insecure dev mode.
 */
export const firstSegmentCaller: Policy<PathPolicyInput> = {
  name: "first_segment_caller",
  async check(input) {
    if (input.insecure) return undefined;
    const { path } = input;
    const i = path.index - 1;
    const seg = path.pathSegments[i];
    if (i < 0 || seg === undefined) return undefined;
    const peer = peerIdOf(input);
    if (peer === undefined) return "the peer has no SPIFFE ID";
    const where = `path segment ${i}${seg.name ? ` (${seg.name})` : ""}`;
    let sub: string | undefined;
    try {
      sub = decodeToken(seg.token).sub;
    } catch (err) {
      return `token of ${where} is invalid: ${(err as Error).message}`;
    }
    if (sub !== peer) return `token of ${where} names ${JSON.stringify(sub ?? "")}, not the peer ${JSON.stringify(peer)}`;
    if (i > 0 && !(input.isTrustedHop ?? isMeshHopId)(peer)) {
      const first = path.pathSegments[0]?.name;
      return `path segment 0${first ? ` (${first})` : ""} is not the caller's own: ${JSON.stringify(peer)} sent ${i} segment${i === 1 ? "" : "s"} before its own and is not a trusted hop`;
    }
    return undefined;
  },
};
