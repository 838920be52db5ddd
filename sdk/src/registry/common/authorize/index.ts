/** authorize (registry): only the original registrant may refresh or unregister a name. */
export { newServer, type AuthorizeOptions } from "./authorize.js";
