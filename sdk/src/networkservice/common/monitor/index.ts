/** monitor element and MonitorConnections server. See README.md. */

export { ConnectionMonitor, type ConnectionMonitorOptions } from "./monitor.js";
export { matchesSelector } from "./selector.js";
export { newServer } from "./server.js";
