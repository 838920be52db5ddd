/** begin (registry): serialise Register/Unregister by name. */
export { KeyedSerializer, newClient, newServer } from "./begin.js";
