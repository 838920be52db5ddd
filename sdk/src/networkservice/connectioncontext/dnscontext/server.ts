/**
 * dnscontext server: gives each connection the endpoint's DNS configs.
 *
 * Reads: the request's `context.dns_context.configs`. Writes: the configs of `configs()` that the request does
 * not already carry (same servers and domains in any order), re-read on every Request so a config known only
 * later (a DNS server address that arrives late) reaches the client with its next refresh; configs this element
 * added on an earlier Request and no longer returns are taken out again. Placement: in an endpoint's
 * `additional`, after `metadata`.
 */
import { create } from "@bufbuild/protobuf";
import { ConnectionContextSchema, DNSConfigSchema, DNSContextSchema } from "@nsm-ts/api/networkservice";
import { MetaKey } from "@nsm-ts/base/context";
import type { DnsConfigLike } from "../../../dns/route.js";
import { connectionOf } from "../../core/chain.js";
import type { NetworkServiceElement } from "../../core/types.js";
import { type StoredDnsConfig, sameDnsConfig } from "./store.js";

/** Creates the dnscontext server element; `configs` is a list, or a function read on every Request. */
export function newServer(configs: readonly DnsConfigLike[] | (() => readonly DnsConfigLike[])): NetworkServiceElement {
  const read = typeof configs === "function" ? configs : () => configs;
  const addedKey = new MetaKey<readonly StoredDnsConfig[]>("dnscontext.added");
  return {
    name: "dnscontext",
    async request(ctx, req, next) {
      const conn = connectionOf(req);
      conn.context ??= create(ConnectionContextSchema);
      conn.context.dnsContext ??= create(DNSContextSchema);
      const dns = conn.context.dnsContext;
      const current = read();
      const before = ctx.metadata.server.get(addedKey) ?? [];
      dns.configs = dns.configs.filter((c) => !before.some((b) => sameDnsConfig(b, c)) || current.some((x) => sameDnsConfig(x, c)));
      const added: StoredDnsConfig[] = [];
      for (const c of current) {
        if (dns.configs.some((x) => sameDnsConfig(x, c))) {
          if (before.some((b) => sameDnsConfig(b, c))) added.push(c);
          continue;
        }
        dns.configs.push(create(DNSConfigSchema, { dnsServerIps: [...c.dnsServerIps], searchDomains: [...c.searchDomains] }));
        added.push({ dnsServerIps: [...c.dnsServerIps], searchDomains: [...c.searchDomains] });
      }
      ctx.metadata.server.set(addedKey, added);
      return next.request(ctx, req);
    },
    close: (ctx, conn, next) => next.close(ctx, conn),
  };
}
