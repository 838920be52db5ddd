/** store (registry): the terminal element backed by a RegistryStore. */
export { newServer } from "./store.js";
