/** The nsmgr chain: forwarder selection, MonitorConnection and the node's registry proxy. */

export { createNsmgr, type Nsmgr, type NsmgrOptions } from "./nsmgr.js";
