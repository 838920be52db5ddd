/** updatetoken element (client and server): signs this hop into the connection path. */
export { newServer, callerOf } from "./server.js";
export { newClient, type UpdateTokenClientOptions } from "./client.js";
