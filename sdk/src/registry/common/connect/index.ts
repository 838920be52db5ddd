/** connect (registry): call a remote registry over gRPC; channels pooled per URL. */
export { type ChannelPool, type ConnectOptions, createChannelPool, fromContext, newClient, urlKey } from "./connect.js";
