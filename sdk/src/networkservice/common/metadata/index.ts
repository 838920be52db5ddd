/** metadata element: per-connection state store. */
export { type MetadataOptions, newClient, newServer } from "./server.js";
