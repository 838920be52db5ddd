/** timeout element: closes connections whose caller stopped refreshing them. See README.md. */
export { newServer, type TimeoutOptions } from "./server.js";
