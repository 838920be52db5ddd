/** filtermechanisms element (server): mechanism preferences that fit the next hop's URL scheme. */
export { type FilterMechanismsOptions, newServer } from "./server.js";
