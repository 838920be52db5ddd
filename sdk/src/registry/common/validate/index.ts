/** validate (registry): InvalidArgument naming the field for malformed entries. */
export { newServer, validateEntry } from "./validate.js";
