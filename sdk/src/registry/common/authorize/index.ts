/** authorize (registry): only the original registrant may refresh or unregister a name. */
export { newServer, ownerCheck, callerOf, type AuthorizeOptions } from "./authorize.js";
