/** clienturl element (client and server): a fixed next-hop URL in the context, and the key `connect` reads. */
export { clientUrlOf, newClient, newServer, toUrl, urlKey } from "./clienturl.js";
