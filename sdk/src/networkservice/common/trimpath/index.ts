/** trimpath element: the final endpoint trims the returned path after its own segment (contract §10.6). */

export { newClient } from "./client.js";
export { newServer, type TrimMarker, trimMarkerKey } from "./server.js";
