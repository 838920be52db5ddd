/** The standard chains: `client()` (NSC side) and `endpoint()` (NSE side). See README.md. */
export { client, type ClientOptions, type ClientCallOptions, type ClientHealOptions, type NsmClient } from "./client.js";
export { endpoint, type EndpointOptions, type Endpoint } from "./endpoint.js";
export * from "./nsmgr/index.js";
export * from "./forwarder/index.js";
