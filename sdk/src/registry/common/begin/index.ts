/** begin (registry): serialise Register/Unregister by name. */
export { newServer, newClient, KeyedSerializer } from "./begin.js";
