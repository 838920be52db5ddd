/** connect element: the gRPC call to the next hop at the end of a client chain. */
export { type ConnectClient, type ConnectOptions, isNextHopUnreachable, newClient } from "./client.js";
