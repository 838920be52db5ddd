/** updatepath element (client and server) and the path helpers it is made of. */
export { newServer, newClient } from "./server.js";
export { updatePath, ensurePath } from "./updatepath.js";
