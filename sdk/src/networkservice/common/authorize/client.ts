/**
 * authorize (client): checks the connection the next hop returned — its path with the next hop's token —
 * against the client policies, and closes it again when they deny (`PermissionDenied` naming the policy).
 * The next hop's identity (TLS certificate) is known only once the call was made, so the element that
 * calls the next hop reports it through the `serverPeerKey` slot in the context.
 *
 * Reads: the returned `connection.path`, `ctx.clock`, the server peer slot. Placement: client chains,
 * after `updatetoken`, before the element that calls the next hop.
 */
import { create } from "@bufbuild/protobuf";
import { PathSchema } from "@nsm-ts/api/networkservice";
import { ContextKey } from "@nsm-ts/base/context";
import { defaultClientPolicies, enforce, type PathPolicyInput } from "@nsm-ts/base/policy";
import type { NetworkServiceClient } from "../../core/types.js";
import type { AuthorizeOptions, PolicyPeer } from "./options.js";

const ELEMENT = "authorize-client";

/** A slot the call-making element (connect) fills with the server's identity from the TLS handshake. */
export interface ServerPeerSlot {
  peer?: PolicyPeer;
}

/** Context key of the server-peer slot; `connect` sets `serverPeerKey.get(ctx).peer` after each call. */
export const serverPeerKey = new ContextKey<ServerPeerSlot>("authorize.serverPeer");

/** Creates the client side. */
export function newClient(opts: AuthorizeOptions = {}): NetworkServiceClient {
  const policies = opts.policies ?? defaultClientPolicies;
  const insecure = opts.insecure ?? false;
  return {
    name: ELEMENT,
    async request(ctx, req, next) {
      const slot: ServerPeerSlot = {};
      const callCtx = ctx.with(serverPeerKey, slot);
      const conn = await next.request(callCtx, req);
      const input: PathPolicyInput = { path: conn.path ?? create(PathSchema), now: ctx.clock.now(), insecure };
      if (slot.peer) input.peer = slot.peer;
      try {
        await enforce(policies, input, ELEMENT);
      } catch (err) {
        ctx.log.warn({ connId: conn.id, err }, `${ELEMENT}: the next hop's connection was denied; closing it`);
        await next.close(callCtx, conn).catch((closeErr: unknown) => {
          ctx.log.warn({ connId: conn.id, err: closeErr }, `${ELEMENT}: closing the denied connection failed`);
        });
        throw err;
      }
      return conn;
    },
    close: (ctx, conn, next) => next.close(ctx, conn),
  };
}
