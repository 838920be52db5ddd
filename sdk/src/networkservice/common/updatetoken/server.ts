/**
 * updatetoken (server): signs this hop into the path. It puts a fresh token (and its `expires`) from the
 * TokenGenerator into this hop's segment, addressed to the caller, and copies the caller's per-RPC token
 * (`nsm-client-token` + `-expires`, in `ctx.peer.token`) into the previous segment. The per-RPC token is
 * addressed to us (its `aud` is our identity), which is what makes `aud(token i) ∋ sub(token i+1)` hold
 * for the `tokens_chained` policy and gives `timeout` the caller's expiry
 * (docs/wire-compatibility.md#updatetoken).
 *
 * Reads: `ctx.peer` (identity and incoming token). Writes: `token`/`expires` of segments `index-1` and
 * `index`. Placement: after `updatepath` and `begin`, before `authorize` and `timeout`.
 */
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { Connection } from "@nsm-ts/api/networkservice";
import type { CallContext } from "@nsm-ts/base/context";
import type { PeerInfo } from "@nsm-ts/base/identity";
import { Code, fail } from "@nsm-ts/base/status";
import type { TokenGenerator } from "@nsm-ts/base/token";
import type { NetworkServiceServer } from "../../core/types.js";
import { putToken } from "./updatetoken.js";

const ELEMENT = "updatetoken";

/** The caller's identity as the token generator wants it (its `aud`). */
export function callerOf(ctx: CallContext): PeerInfo | undefined {
  const p = ctx.peer;
  if (!p || (p.spiffeId === undefined && p.certificate === undefined)) return undefined;
  const out: PeerInfo = {};
  if (p.spiffeId !== undefined) out.spiffeId = p.spiffeId;
  if (p.certificate !== undefined) out.certificate = p.certificate;
  return out;
}

/** Copies the incoming token into the previous segment; returns false when neither it nor an expiry is there. */
function takeIncoming(ctx: CallContext, conn: Connection): boolean {
  const path = conn.path;
  if (!path || path.index === 0) return true;
  const prev = path.pathSegments[path.index - 1];
  if (!prev) return true;
  const incoming = ctx.peer?.token;
  if (incoming) {
    prev.token = incoming.token;
    prev.expires = timestampFromDate(incoming.expires);
    return true;
  }
  return prev.expires !== undefined;
}

/** Creates the server side: `generate` makes this hop's tokens. */
export function newServer(generate: TokenGenerator): NetworkServiceServer {
  return {
    name: ELEMENT,
    async request(ctx, req, next) {
      const conn = req.connection ?? fail(Code.InvalidArgument, `${ELEMENT}: request has no connection`);
      if (!takeIncoming(ctx, conn)) {
        const i = (conn.path?.index ?? 1) - 1;
        fail(Code.InvalidArgument, `${ELEMENT}: path.path_segments[${i}].expires is missing and the caller sent no nsm-client-token`);
      }
      await putToken(conn, generate, callerOf(ctx), ELEMENT);
      return next.request(ctx, req);
    },
    async close(ctx, conn, next) {
      // Best effort: a Close still goes on when the token cannot be renewed (the policies decide).
      try {
        takeIncoming(ctx, conn);
        await putToken(conn, generate, callerOf(ctx), ELEMENT);
      } catch (err) {
        ctx.log.warn({ connId: conn.id, err }, `${ELEMENT}: could not renew the token for Close`);
      }
      await next.close(ctx, conn);
    },
  };
}
