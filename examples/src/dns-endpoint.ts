/** An example network service endpoint: point-to-point addresses plus a DNS config (docs/write-an-endpoint.md). */
import { create } from "@bufbuild/protobuf";
import { ConnectionContextSchema, DNSConfigSchema, DNSContextSchema } from "@nsm-ts/api/networkservice";
import type { Endpoint, EndpointOptions, NetworkServiceElement } from "@nsm-ts/sdk/networkservice";
import { connectionOf, endpoint, ipam, mechanisms, passThrough } from "@nsm-ts/sdk/networkservice";
import { kernel } from "@nsm-ts/sdk-linux";

/** Options of `dnsEndpoint`: the standard endpoint's name, token generator and dev-mode switch, plus ours. */
export interface DnsEndpointOptions extends Pick<EndpointOptions, "name" | "tokenGenerator" | "insecure"> {
  /** Prefixes to hand out /32 (or /128) address pairs from. */
  cidrs: string[];
  dns: { servers: string[]; searchDomains: string[] };
}

/** Our own element: puts the DNS config into the connection, so the client can configure its resolver. */
export function dnsConfig(dns: DnsEndpointOptions["dns"]): NetworkServiceElement {
  return {
    name: "dns-config",
    request(ctx, req, next) {
      const conn = connectionOf(req);
      conn.context ??= create(ConnectionContextSchema);
      const configs = [create(DNSConfigSchema, { dnsServerIps: dns.servers, searchDomains: dns.searchDomains })];
      conn.context.dnsContext = create(DNSContextSchema, { configs });
      return next.request(ctx, req);
    },
    close: (ctx, conn, next) => next.close(ctx, conn),
  };
}

/** The endpoint: the standard chain, then mechanisms, IPAM and our element. */
export function dnsEndpoint(o: DnsEndpointOptions): Endpoint {
  const mechs = mechanisms.newServer({ KERNEL: kernel.newServer(), NOOP: passThrough });
  const addresses = ipam.point2pointipam.newServer(ipam.createAddressPool(o.cidrs));
  const additional = [mechs, addresses, dnsConfig(o.dns)];
  return endpoint({ name: o.name, tokenGenerator: o.tokenGenerator, insecure: o.insecure ?? false, additional });
}
