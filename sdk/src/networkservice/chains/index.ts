/** The standard chains: `client()` (NSC side) and `endpoint()` (NSE side). See README.md. */
export { type ClientCallOptions, type ClientHealOptions, type ClientOptions, client, type NsmClient } from "./client.js";
export { type Endpoint, type EndpointOptions, endpoint } from "./endpoint.js";
export { createForwarder, type Forwarder, type ForwarderOptions } from "./forwarder/index.js";
export {
  type FailoverMode,
  type HopOptions,
  type NextHopMonitor,
  type NextHopMonitorOptions,
  newFailover,
  newNextHopMonitor,
  newServerView,
} from "./hop/index.js";
export { createNsmgr, type Nsmgr, type NsmgrOptions } from "./nsmgr/index.js";
export { createNsmgrProxy, type NsmgrProxy, type NsmgrProxyOptions } from "./nsmgrproxy/index.js";
