/**
 * authorize (server): runs the path policies over the incoming connection's path before anything else
 * acts on it, and answers `PermissionDenied` naming the failed policy. It checks the "left side" of the
 * path (segments up to and including ours): segments after ours are what we returned last time and are
 * not the caller's claim. Calls without a peer (in-process, not from the network) are not checked, as
 * upstream does.
 *
 * Reads: `ctx.peer` (certificate, SPIFFE ID), `ctx.clock`, `connection.path`. Placement: after
 * `updatetoken` (the previous segment must already hold the caller's per-RPC token), before `timeout`.
 */
import { create } from "@bufbuild/protobuf";
import { type Connection, type Path, PathSchema } from "@nsm-ts/api/networkservice";
import type { CallContext } from "@nsm-ts/base/context";
import { defaultServerPolicies, enforce, type PathPolicyInput } from "@nsm-ts/base/policy";
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
  const insecure = opts.insecure ?? false;
  const check = async (ctx: CallContext, conn: Connection | undefined): Promise<void> => {
    if (!ctx.peer) return;
    const input: PathPolicyInput = { path: leftSide(conn?.path), peer: peerOf(ctx), now: ctx.clock.now(), insecure };
    await enforce(policies, input, ELEMENT);
  };
  return {
    name: ELEMENT,
    async request(ctx, req, next) {
      await check(ctx, req.connection);
      return next.request(ctx, req);
    },
    async close(ctx, conn, next) {
      // A denied Close stops here: closing someone else's connection is exactly what this guards against.
      await check(ctx, conn);
      await next.close(ctx, conn);
    },
  };
}
