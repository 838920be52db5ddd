/** The nsmgr chain: forwarder selection, MonitorConnection and the node's registry proxy. */
export { createNsmgr, type Nsmgr, type NsmgrOptions } from "./nsmgr.js";
export { newNextHopMonitor, type NextHopMonitor, type NextHopMonitorOptions } from "./nexthop.js";
export type { HopOptions } from "./parts.js";
export { newServerView } from "./serverview.js";
export { newFailover, type FailoverMode } from "./failover.js";
