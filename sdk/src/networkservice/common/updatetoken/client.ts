/**
 * updatetoken (client): puts a fresh token from the TokenGenerator into this hop's path segment before the
 * Request or Close leaves for the next hop, so the segment always carries a valid `token` and `expires`
 * (the next hop's timeout and the refresh element read them). The next hop replaces it with the per-RPC
 * token our transport sends, which is addressed to that hop.
 *
 * Writes: `token`/`expires` of the segment at `path.index`. Placement: client chains, after `updatepath`
 * (and `refresh`), before `authorize` and the element that calls the next hop.
 */

import type { CallContext } from "@nsm-ts/base/context";
import type { PeerInfo } from "@nsm-ts/base/identity";
import { Code, fail } from "@nsm-ts/base/status";
import type { TokenGenerator } from "@nsm-ts/base/token";
import type { NetworkServiceClient } from "../../core/types.js";
import { putToken } from "./updatetoken.js";

const ELEMENT = "updatetoken-client";

/** Options of the client side. */
export interface UpdateTokenClientOptions {
  /**
   * The audience of our tokens, when known before the call (e.g. the next hop's configured SPIFFE ID);
   * default none (no `aud`, as upstream when no TLS peer is known).
   */
  peer?: (ctx: CallContext) => PeerInfo | undefined;
}

/** Creates the client side: `generate` makes this hop's tokens. */
export function newClient(generate: TokenGenerator, opts: UpdateTokenClientOptions = {}): NetworkServiceClient {
  return {
    name: ELEMENT,
    async request(ctx, req, next) {
      const conn = req.connection ?? fail(Code.InvalidArgument, `${ELEMENT}: request has no connection`);
      await putToken(conn, generate, opts.peer?.(ctx), ELEMENT);
      return next.request(ctx, req);
    },
    async close(ctx, conn, next) {
      try {
        await putToken(conn, generate, opts.peer?.(ctx), ELEMENT);
      } catch (err) {
        ctx.log.warn({ connId: conn.id, err }, `${ELEMENT}: could not renew the token for Close`);
      }
      await next.close(ctx, conn);
    },
  };
}
