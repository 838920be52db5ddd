/** resourceipam: point-to-point addresses for each connection taken from a subnet of the resource manager. */
export { newServer, PORT_CONTEXT_KEY, type ResourceIpamOptions } from "./server.js";
