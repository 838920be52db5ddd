/** point2pointipam element (server): /32 or /128 address pairs per connection from an address pool. */
export { newServer } from "./server.js";
