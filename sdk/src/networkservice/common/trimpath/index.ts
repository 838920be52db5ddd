/**
 * trimpath element: the final endpoint trims the returned path after its own segment
 * (docs/wire-compatibility.md#trimpath).
 */

export { newClient } from "./client.js";
export { newServer, type TrimMarker, trimMarkerKey } from "./server.js";
