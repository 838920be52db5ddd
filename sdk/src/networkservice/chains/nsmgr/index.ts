/** The nsmgr chain: forwarder selection, MonitorConnection and the node's registry proxy. */

export { type FailoverMode, newFailover } from "./failover.js";
export { type NextHopMonitor, type NextHopMonitorOptions, newNextHopMonitor } from "./nexthop.js";
export { createNsmgr, type Nsmgr, type NsmgrOptions } from "./nsmgr.js";
export type { HopOptions } from "./parts.js";
export { newServerView } from "./serverview.js";
