/**
 * vl3dns client: a vL3 endpoint's side of its connections to its peers. It hands the peer this endpoint's
 * member-name server (so the peer can ask it) and keeps the peer's servers from the answer in `peers`, which the
 * member-name server fans out to.
 *
 * Reads: the returned `context.dns_context.configs`. Writes: the request's `context.dns_context.configs` (only
 * ours, once the address is known); `peers` per connection (our own server left out). Close removes the
 * connection's peers. Placement: in the client chain a vL3 endpoint uses to reach its peers (`additional`).
 */
import { create } from "@bufbuild/protobuf";
import { ConnectionContextSchema, DNSConfigSchema, DNSContextSchema } from "@nsm-ts/api/networkservice";
import { connectionOf } from "../../../core/chain.js";
import type { NetworkServiceElement } from "../../../core/types.js";
import type { DnsConfigStore } from "../store.js";

/** Creates the vl3dns client element; `dnsServerAddress` as in `Vl3DnsServerOptions`. */
export function newClient(peers: DnsConfigStore, opts: { dnsServerAddress: () => string | undefined }): NetworkServiceElement {
  return {
    name: "vl3dns",
    async request(ctx, req, next) {
      const conn = connectionOf(req);
      conn.context ??= create(ConnectionContextSchema);
      conn.context.dnsContext ??= create(DNSContextSchema);
      const own = opts.dnsServerAddress();
      conn.context.dnsContext.configs = own === undefined ? [] : [create(DNSConfigSchema, { dnsServerIps: [own] })];
      const out = await next.request(ctx, req);
      const theirs = (out.context?.dnsContext?.configs ?? []).filter((c) => own === undefined || !c.dnsServerIps.includes(own));
      peers.set(out.id, theirs);
      return out;
    },
    async close(ctx, conn, next) {
      try {
        await next.close(ctx, conn);
      } finally {
        peers.delete(conn.id);
      }
    },
  };
}
