/** clientinfo element (client and server): node/pod/cluster labels on connections. */
export { addClientInfo, type ClientInfoOptions, newClient, newServer } from "./clientinfo.js";
