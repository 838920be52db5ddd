/** connect element: the gRPC call to the next hop at the end of a client chain. */
export { newClient, type ConnectOptions, type ConnectClient } from "./client.js";
