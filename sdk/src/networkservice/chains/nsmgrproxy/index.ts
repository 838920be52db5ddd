/** The nsmgr-proxy chain: a domain's edge for interdomain connections and registrations. */
export { createNsmgrProxy, type NsmgrProxy, type NsmgrProxyOptions } from "./nsmgrproxy.js";
