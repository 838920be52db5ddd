/** authorize element (client and server): enforces the path policies (tokens valid, unexpired, chained, signed). */

export { newClient, type ServerPeerSlot, serverPeerKey } from "./client.js";
export { type ConnectionSource, type MonitorAuthorizeOptions, newMonitorServer, pathCarries, spiffeIdConnectionMap } from "./monitor.js";
export type { AuthorizeOptions, PolicyPeer } from "./options.js";
export { leftSide, newServer } from "./server.js";
