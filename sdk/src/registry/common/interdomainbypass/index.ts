/** interdomainbypass (registry): publish the nsmgr-proxy's URL, remember the real one for routing. */
export { InterdomainUrls, newServer } from "./interdomainbypass.js";
