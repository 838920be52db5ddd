/** swapip (registry): rewrite endpoint URL hosts between internal and external addresses. */
export { type IpMapSource, newServer, swapUrl } from "./swapip.js";
