/** filtermechanisms element (server): mechanism preferences that fit the next hop's URL scheme. */
export { newServer, type FilterMechanismsOptions } from "./server.js";
