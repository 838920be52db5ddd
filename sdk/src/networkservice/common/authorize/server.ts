/**
 * authorize (server): runs the path policies over the incoming connection's path before anything else
 * acts on it, and answers `PermissionDenied` naming the failed policy. It checks the "left side" of the
 * path (segments up to and including ours): segments after ours are what we returned last time and are
 * not the caller's claim. Close runs the same policies except `tokens_expired`, so a caller (or a hop
 * cleaning up after a timeout) can close with a token that ran out. Calls without a peer (in-process, not
 * from the network) are not checked, as upstream does.
 *
 * First segment (docs/wire-compatibility.md#policies): the caller's segment must carry the peer's own identity,
 * and only a trusted hop (`trustedHops`) may send a path with segments before its own.
 *
 * Ownership (docs/wire-compatibility.md#policies): the SPIFFE ID of the peer whose Request
 * created a connection owns it; a later Request for the same connection id (a refresh) or a Close from
 * another identity is `PermissionDenied`. The owner is kept per connection id until Close.
 *
 * Reads: `ctx.peer` (certificate, SPIFFE ID), `ctx.clock`, `connection.path`. Placement: after
 * `updatetoken` (the previous segment must already hold the caller's per-RPC token), before `timeout`.
 */
import { create } from "@bufbuild/protobuf";
import { type Connection, type Path, PathSchema } from "@nsm-ts/api/networkservice";
import type { CallContext } from "@nsm-ts/base/context";
import { defaultServerPolicies, enforce, isMeshHopId, type PathPolicyInput, tokensExpired } from "@nsm-ts/base/policy";
import { Code, StatusError } from "@nsm-ts/base/status";
import type { NetworkServiceServer } from "../../core/types.js";
import type { AuthorizeOptions, PolicyPeer } from "./options.js";

const ELEMENT = "authorize";

/** The path up to and including `path.index`. */
export function leftSide(path: Path | undefined): Path {
  if (!path) return create(PathSchema);
  return create(PathSchema, { index: path.index, pathSegments: path.pathSegments.slice(0, path.index + 1) });
}

function peerOf(ctx: CallContext): PolicyPeer {
  const out: PolicyPeer = {};
  if (ctx.peer?.spiffeId !== undefined) out.spiffeId = ctx.peer.spiffeId;
  if (ctx.peer?.certificate !== undefined) out.certificate = ctx.peer.certificate;
  return out;
}

/** Creates the server side. */
export function newServer(opts: AuthorizeOptions = {}): NetworkServiceServer {
  const policies = opts.policies ?? defaultServerPolicies;
  const closePolicies = policies.filter((p) => p !== tokensExpired && p.name !== tokensExpired.name);
  const insecure = opts.insecure ?? false;
  const isTrustedHop = opts.trustedHops ?? isMeshHopId;
  /** Connection id → SPIFFE ID of the peer that created it (only peers with an identity). */
  const owners = new Map<string, string>();
  const check = async (ctx: CallContext, conn: Connection | undefined, list = policies): Promise<void> => {
    if (!ctx.peer) return;
    const input: PathPolicyInput = { path: leftSide(conn?.path), peer: peerOf(ctx), now: ctx.clock.now(), insecure, isTrustedHop };
    await enforce(list, input, ELEMENT);
  };
  const checkOwner = (ctx: CallContext, conn: Connection | undefined, what: string): void => {
    if (!ctx.peer || !conn) return;
    const owner = owners.get(conn.id);
    if (owner === undefined || owner === ctx.peer.spiffeId) return;
    throw new StatusError(
      Code.PermissionDenied,
      `${ELEMENT}: connection ${JSON.stringify(conn.id)} belongs to ${JSON.stringify(owner)}; ${JSON.stringify(ctx.peer.spiffeId ?? "")} may not ${what} it`,
    );
  };
  return {
    name: ELEMENT,
    async request(ctx, req, next) {
      await check(ctx, req.connection);
      checkOwner(ctx, req.connection, "refresh");
      const conn = await next.request(ctx, req);
      const caller = ctx.peer?.spiffeId;
      if (caller !== undefined && !owners.has(conn.id)) owners.set(conn.id, caller);
      return conn;
    },
    async close(ctx, conn, next) {
      // A denied Close stops here: closing someone else's connection is exactly what this guards against.
      await check(ctx, conn, closePolicies);
      checkOwner(ctx, conn, "close");
      try {
        await next.close(ctx, conn);
      } finally {
        owners.delete(conn.id);
      }
    },
  };
}
