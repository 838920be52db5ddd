/** metadata element: per-connection state store. */
export { newServer, newClient, type MetadataOptions } from "./server.js";
