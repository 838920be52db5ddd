/** updatepath element (client and server) and the path helpers it is made of. */
export { newClient, newServer } from "./server.js";
export { ensurePath, updatePath } from "./updatepath.js";
