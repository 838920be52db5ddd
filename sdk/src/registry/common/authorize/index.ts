/** authorize (registry): only the original registrant may refresh or unregister a name. */
export { type AuthorizeOptions, callerOf, newServer, ownerCheck } from "./authorize.js";
