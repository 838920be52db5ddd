/**
 * vl3dns server: a vL3 endpoint's member names. Each client gets a name per template (default
 * `{{name}}.{{networkService}}.`) bound to its `src_ip_addrs` in the endpoint's `MemoryRecords`, and the DNS
 * config of the endpoint's member-name server (its address, the names' parent domains as search domains).
 *
 * Reads: path segment 0's name, `network_service`, `labels`, the returned `context.ip_context.src_ip_addrs`;
 * with `peers`, the request's DNS configs whose servers `isPeer` accepts (another vL3 endpoint joining as a
 * client brings its own server). Writes: `context.dns_context.configs` (our server, once its address is known:
 * until then the Request goes on without it and a refresh adds it); the records (after a successful Request;
 * names that changed are replaced); server metadata; `peers` per connection. Close removes the names and the
 * peer's configs. Placement: in a vL3 endpoint's `additional`, after `metadata` and before the IPAM element (it
 * reads the addresses IPAM writes on the way back).
 */
import { create } from "@bufbuild/protobuf";
import { ConnectionContextSchema, DNSConfigSchema, DNSContextSchema } from "@nsm-ts/api/networkservice";
import { MetaKey } from "@nsm-ts/base/context";
import type { MemoryRecords } from "../../../../dns/memory.js";
import { connectionOf } from "../../../core/chain.js";
import type { NetworkServiceElement } from "../../../core/types.js";
import { type DnsConfigStore, sameDnsConfig } from "../store.js";
import { compileNameTemplate, DEFAULT_NAME_TEMPLATE, parentDomains } from "./names.js";

/** Options of `vl3dns.newServer`. */
export interface Vl3DnsServerOptions {
  /**
   * Address of this endpoint's member-name server as clients reach it (`ip`, or `ip:port` off port 53), read on
   * every Request; undefined while not yet known.
   */
  dnsServerAddress: () => string | undefined;
  /** Name templates (`{{name}}`, `{{networkService}}`, `{{labels.KEY}}`); default `[DEFAULT_NAME_TEMPLATE]`. */
  nameTemplates?: readonly string[];
  /** Where the DNS configs of peers (other vL3 endpoints connecting as clients) are kept; default none. */
  peers?: DnsConfigStore;
  /** Whether a DNS server address a requester carries is a peer's (e.g. inside the vL3 prefix); default none is. */
  isPeer?: (serverAddress: string) => boolean;
}

/** Creates the vl3dns server element writing member names into `records`. */
export function newServer(records: MemoryRecords, opts: Vl3DnsServerOptions): NetworkServiceElement {
  const templates = (opts.nameTemplates ?? [DEFAULT_NAME_TEMPLATE]).map(compileNameTemplate);
  const namesKey = new MetaKey<readonly string[]>("vl3dns.names");
  const isPeer = opts.isPeer ?? (() => false);
  return {
    name: "vl3dns",
    async request(ctx, req, next) {
      const conn = connectionOf(req);
      const names = templates.map((t) => t(conn));
      conn.context ??= create(ConnectionContextSchema);
      conn.context.dnsContext ??= create(DNSContextSchema);
      const dns = conn.context.dnsContext;
      const own = opts.dnsServerAddress();
      const brought = dns.configs.filter((c) => c.dnsServerIps.some((ip) => ip !== own && isPeer(ip)));
      if (own !== undefined) {
        const config = { dnsServerIps: [own], searchDomains: [...new Set(names.flatMap(parentDomains))] };
        if (!dns.configs.some((c) => sameDnsConfig(c, config))) dns.configs.push(create(DNSConfigSchema, config));
      } else {
        ctx.log.info({ connId: conn.id }, "vl3dns: member-name server address not known yet; a refresh will add it");
      }
      const out = await next.request(ctx, req);
      const md = ctx.metadata.server;
      const previous = md.get(namesKey) ?? [];
      for (const n of previous) if (!names.includes(n)) records.delete(n);
      const ips = out.context?.ipContext?.srcIpAddrs ?? [];
      if (ips.length > 0) {
        for (const n of names) records.set(n, ips);
        md.set(namesKey, names);
      } else {
        md.delete(namesKey);
      }
      if (opts.peers && brought.length > 0) opts.peers.set(out.id, brought);
      return out;
    },
    async close(ctx, conn, next) {
      try {
        await next.close(ctx, conn);
      } finally {
        for (const n of ctx.metadata.server.get(namesKey) ?? []) records.delete(n);
        ctx.metadata.server.delete(namesKey);
        opts.peers?.delete(conn.id);
      }
    },
  };
}
