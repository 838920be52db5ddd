/** clienturl element (client and server): a fixed next-hop URL in the context, and the key `connect` reads. */
export { newClient, newServer, urlKey, clientUrlOf, toUrl } from "./clienturl.js";
