/** @nsm-ts/examples: the example endpoint of docs/write-an-endpoint.md and the code that serves it. */
export { dnsEndpoint, dnsConfig, type DnsEndpointOptions } from "./dns-endpoint.js";
export { serve, type ServeOptions } from "./serve.js";
