/**
 * mechanismtranslation: where a server chain continues as a client (forwarder, passthrough endpoint), the
 * server side's mechanism belongs to the previous hop and must not leak to the next one. The client leg
 * gets a copy of the request without mechanism or preferences (the client mechanism elements after this one
 * add their own), keeps its own mechanism across refreshes, and the server side's mechanism is put back on
 * the returned connection. Reads/writes: `connection.mechanism`, `mechanism_preferences`, client metadata.
 * Place at the start of the client part of such a chain.
 */
import { clone } from "@bufbuild/protobuf";
import { ConnectionSchema, type Mechanism, MechanismSchema, NetworkServiceRequestSchema } from "@nsm-ts/api/networkservice";
import { MetaKey } from "@nsm-ts/base/context";
import { connectionOf } from "../../core/chain.js";
import type { NetworkServiceElement } from "../../core/types.js";

const clientMechanismKey = new MetaKey<Mechanism>("mechanismtranslation.client");

/** Creates the mechanismtranslation client element. */
export function newClient(): NetworkServiceElement {
  return {
    name: "mechanismtranslation",
    async request(ctx, req, next) {
      const serverMechanism = connectionOf(req).mechanism;
      const clientReq = clone(NetworkServiceRequestSchema, req);
      clientReq.mechanismPreferences = [];
      const stored = ctx.metadata.client.get(clientMechanismKey);
      connectionOf(clientReq).mechanism = stored ? clone(MechanismSchema, stored) : undefined;

      const out = await next.request(ctx, clientReq);
      if (out.mechanism) ctx.metadata.client.set(clientMechanismKey, clone(MechanismSchema, out.mechanism));
      const conn = clone(ConnectionSchema, out);
      conn.mechanism = serverMechanism ? clone(MechanismSchema, serverMechanism) : undefined;
      return conn;
    },
    async close(ctx, conn, next) {
      const c = clone(ConnectionSchema, conn);
      const stored = ctx.metadata.client.get(clientMechanismKey);
      c.mechanism = stored ? clone(MechanismSchema, stored) : undefined;
      try {
        await next.close(ctx, c);
      } finally {
        ctx.metadata.client.delete(clientMechanismKey);
      }
    },
  };
}
