/** KERNEL mechanism for endpoints (server side): its netns URL and interface name in the accepted mechanism. */
export { type KernelServerOptions, newServer } from "./server.js";
