/** An example network service endpoint: point-to-point addresses plus a DNS config (docs/write-an-endpoint.md). */
import { create } from "@bufbuild/protobuf";
import { ConnectionContextSchema, DNSConfigSchema, DNSContextSchema } from "@nsm-ts/api/networkservice";
import { type Endpoint, type NetworkServiceElement, connectionOf, endpoint, ipam, mechanisms, passThrough } from "@nsm-ts/sdk/networkservice";
import type { TokenGenerator } from "@nsm-ts/sdk/tools/token";
import { kernel } from "@nsm-ts/sdk-linux";

/** Options of `dnsEndpoint`. */
export interface DnsEndpointOptions {
  name: string;
  tokenGenerator: TokenGenerator;
  /** Prefixes to hand out /32 (or /128) address pairs from. */
  cidrs: string[];
  dns: { servers: string[]; searchDomains: string[] };
  /** The dev mode without certificates (tokens are not verified). */
  insecure?: boolean;
}

/** Our own element: puts the DNS config into the connection, so the client can configure its resolver. */
export function dnsConfig(dns: DnsEndpointOptions["dns"]): NetworkServiceElement {
  return {
    name: "dns-config",
    request(ctx, req, next) {
      const conn = connectionOf(req);
      conn.context ??= create(ConnectionContextSchema);
      conn.context.dnsContext = create(DNSContextSchema, { configs: [create(DNSConfigSchema, { dnsServerIps: dns.servers, searchDomains: dns.searchDomains })] });
      return next.request(ctx, req);
    },
    close: (ctx, conn, next) => next.close(ctx, conn),
  };
}

/** The endpoint: the standard chain, then mechanisms, IPAM and our element. */
export function dnsEndpoint(o: DnsEndpointOptions): Endpoint {
  const mechs = mechanisms.newServer({ KERNEL: kernel.newServer(), NOOP: passThrough });
  const addresses = ipam.point2pointipam.newServer(ipam.createAddressPool(o.cidrs));
  return endpoint({ name: o.name, tokenGenerator: o.tokenGenerator, insecure: o.insecure ?? false, additional: [mechs, addresses, dnsConfig(o.dns)] });
}
