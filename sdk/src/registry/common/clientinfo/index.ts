/** clientinfo (registry): node/pod/cluster labels on every service of an endpoint. */
export { newClient, type ClientInfoOptions } from "./clientinfo.js";
