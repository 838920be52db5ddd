/** resourceipam: point-to-point addresses for each connection taken from a subnet of the resource manager. */
export { newServer, type ResourceIpamOptions } from "./server.js";
