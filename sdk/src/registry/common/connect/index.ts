/** connect (registry): call a remote registry over gRPC; channels pooled per URL. */
export { newClient, createChannelPool, type ChannelPool, type ConnectOptions } from "./connect.js";
