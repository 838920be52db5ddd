/** clientinfo element (client and server): node/pod/cluster labels on connections. */
export { newClient, newServer, addClientInfo, type ClientInfoOptions } from "./clientinfo.js";
