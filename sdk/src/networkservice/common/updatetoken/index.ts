/** updatetoken element (client and server): signs this hop into the connection path. */

export { newClient, type UpdateTokenClientOptions } from "./client.js";
export { callerOf, newServer } from "./server.js";
