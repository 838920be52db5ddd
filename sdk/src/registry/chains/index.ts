/** Registry chains: the server a registry serves and the client that talks to one. */
export { createRegistryServer, type RegistryServerOptions, type RegistryServer } from "./server.js";
export { createRegistryClient, type RegistryClientOptions } from "./client.js";
export { createNsmgrRegistry, type NsmgrRegistry, type NsmgrRegistryOptions } from "./nsmgr.js";
