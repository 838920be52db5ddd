/** monitor element and MonitorConnections server. See README.md. */
export { newServer } from "./server.js";
export { ConnectionMonitor, type ConnectionMonitorOptions } from "./monitor.js";
export { matchesSelector } from "./selector.js";
