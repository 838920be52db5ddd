/** NOOP mechanism: the builder and the client element offering it. */
export { mechanism, newClient } from "./mechanism.js";
