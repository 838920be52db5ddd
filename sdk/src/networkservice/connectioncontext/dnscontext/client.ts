/**
 * dnscontext client: records the DNS configs each connection comes back with in a `DnsConfigStore`, so one
 * forwarder serves all connections of the client.
 *
 * Reads: the returned `context.dns_context.configs`. Writes: an empty `context.dns_context` on the request when
 * there is none (as upstream: the endpoint sees a client that handles DNS); the store, on every successful
 * Request (first, refresh, heal) and on Close. A failed refresh keeps the configs the connection had.
 * Placement: anywhere after `refresh` and `heal` in a client chain (`additional`), so their re-requests pass it.
 */
import { create } from "@bufbuild/protobuf";
import { ConnectionContextSchema, DNSContextSchema } from "@nsm-ts/api/networkservice";
import { connectionOf } from "../../core/chain.js";
import type { NetworkServiceElement } from "../../core/types.js";
import type { DnsConfigStore } from "./store.js";

/** Creates the dnscontext client element over `store` (shared with the forwarder that reads it). */
export function newClient(store: DnsConfigStore): NetworkServiceElement {
  return {
    name: "dnscontext",
    async request(ctx, req, next) {
      const conn = connectionOf(req);
      conn.context ??= create(ConnectionContextSchema);
      conn.context.dnsContext ??= create(DNSContextSchema);
      const out = await next.request(ctx, req);
      const configs = out.context?.dnsContext?.configs ?? [];
      if (configs.length > 0 || store.get(out.id) !== undefined) {
        ctx.log.debug({ connId: out.id, configs: configs.length }, "dnscontext: DNS configs recorded");
      }
      store.set(out.id, configs);
      return out;
    },
    async close(ctx, conn, next) {
      try {
        await next.close(ctx, conn);
      } finally {
        store.delete(conn.id);
      }
    },
  };
}
