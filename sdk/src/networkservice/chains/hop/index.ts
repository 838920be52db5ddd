/** What the nsmgr and forwarder chains share: a server head and a client tail to the next hop. See README.md. */

export { type FailoverMode, newFailover } from "./failover.js";
export { type NextHopMonitor, type NextHopMonitorOptions, newNextHopMonitor } from "./nexthop.js";
export type { HopOptions } from "./parts.js";
export { newServerView } from "./serverview.js";
