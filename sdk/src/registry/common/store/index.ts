/** store (registry): the terminal element backed by a RegistryStore. */
export { newServer, type StoreElementOptions } from "./store.js";
