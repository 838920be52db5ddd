/** mechanismtranslation element (client): separate mechanisms for the server and client legs of one hop. */
export { newClient } from "./client.js";
