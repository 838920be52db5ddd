/** setregistrationtime (registry): keep the first registration time across refreshes. */
export { newServer, type SetRegistrationTimeOptions } from "./setregistrationtime.js";
