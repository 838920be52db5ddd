/** authorize element (client and server): enforces the path policies (tokens valid, unexpired, chained, signed). */
export { newServer, leftSide } from "./server.js";
export { newClient, serverPeerKey, type ServerPeerSlot } from "./client.js";
export type { AuthorizeOptions, PolicyPeer } from "./options.js";
export { newMonitorServer, spiffeIdConnectionMap, type ConnectionSource, type MonitorAuthorizeOptions } from "./monitor.js";
