/** interdomainbypass (server): route a Request through a domain's nsmgr-proxy, strip and restore `@domain`. */
export { newLoopGuard, newServer, routedKey, unlessRouted } from "./server.js";
