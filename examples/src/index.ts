/** @nsm-ts/examples: the example endpoint of docs/write-an-endpoint.md and the code that serves it. */
export { type DnsEndpointOptions, dnsConfig, dnsEndpoint } from "./dns-endpoint.js";
export { type ServeOptions, serve } from "./serve.js";
