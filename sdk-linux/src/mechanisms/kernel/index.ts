/** KERNEL mechanism for endpoints (server side): its netns URL and interface name in the accepted mechanism. */
export { newServer, type KernelServerOptions } from "./server.js";
