/** trimpath element: the final endpoint trims the returned path after its own segment (contract §10.6). */
export { newServer, trimMarkerKey, type TrimMarker } from "./server.js";
export { newClient } from "./client.js";
