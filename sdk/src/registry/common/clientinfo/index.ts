/** clientinfo (registry): node/pod/cluster labels on every service of an endpoint. */
export { type ClientInfoOptions, newClient } from "./clientinfo.js";
