/** The standard chains: `client()` (NSC side) and `endpoint()` (NSE side). See README.md. */
export { type ClientCallOptions, type ClientHealOptions, type ClientOptions, client, type NsmClient } from "./client.js";
export { type Endpoint, type EndpointOptions, endpoint } from "./endpoint.js";
export * from "./forwarder/index.js";
export * from "./hop/index.js";
export * from "./nsmgr/index.js";
