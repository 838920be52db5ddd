/**
 * @nsm-ts/sdk/dns: a small DNS server and forwarder for NSM's DNS contexts (upstream's `dnsutils`), on the
 * dns-packet wire format. Handlers chain like elements (`dnsChain`); the forwarder routes by search domain and
 * fans out (`newRouteHandler`), a vL3 endpoint answers its members' names (`MemoryRecords`, `newMemoryHandler`)
 * and asks its peers (`newFanoutHandler(..., { peers: true })`). No Linux here: resolv.conf files are handled
 * in `@nsm-ts/sdk-linux`.
 */

export {
  type DnsServerAddress,
  type Exchange,
  type ExchangeOptions,
  exchange,
  exchangeTcp,
  exchangeUdp,
  formatServerAddress,
  parseServerAddress,
} from "./exchange.js";
export { type FanoutHandlerOptions, type FanoutOptions, fanout, newFanoutHandler } from "./fanout.js";
export { type DnsHandler, type DnsNext, type DnsRequest, dnsChain } from "./handler.js";
export { createMemberDnsServer, type MemberDnsServer, type MemberDnsServerOptions } from "./member.js";
export { type MemoryHandlerOptions, MemoryRecords, newMemoryHandler, newNoLoopHandler, type RecordsListener } from "./memory.js";
export {
  buildQuery,
  type DnsMessage,
  decodeMessage,
  normalizeName,
  questionOf,
  Rcode,
  type ReplyOptions,
  rcodeOf,
  recursionDesired,
  replyTo,
  withId,
  withoutRecursion,
} from "./message.js";
export { DnsCounters, type DnsServerStats, type MalformedReason } from "./metrics.js";
export { parseResolvConf, type ResolvConf, renderResolvConf } from "./resolvconf.js";
export { type DnsConfigLike, inDomain, newRouteHandler, type RouteOptions, routeServers } from "./route.js";
export { createDnsServer, type DnsServer, type DnsServerOptions } from "./server.js";
