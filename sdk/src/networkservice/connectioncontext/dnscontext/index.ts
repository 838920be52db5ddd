/**
 * dnscontext: DNS configs on connections. The server element gives clients the endpoint's configs; the client
 * element merges the configs of all of a client's connections into a `DnsConfigStore` that a forwarder
 * (`@nsm-ts/sdk/dns`) routes by; `vl3dns` serves a vL3 network's member names.
 */

export { newClient } from "./client.js";
export { newServer } from "./server.js";
export { type DnsConfigListener, DnsConfigStore, type StoredDnsConfig, sameDnsConfig } from "./store.js";
export * as vl3dns from "./vl3dns/index.js";
