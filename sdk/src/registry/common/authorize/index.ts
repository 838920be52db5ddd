/** authorize (registry): only the original registrant may refresh or unregister a name. */
export { type AuthorizeOptions, callerOf, isNsmgrId, newServer, ownerCheck, registrarPatterns } from "./authorize.js";
