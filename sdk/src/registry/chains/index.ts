/** Registry chains: the server a registry serves and the client that talks to one. */

export { createRegistryClient, type RegistryClientOptions } from "./client.js";
export {
  type BackendEvent,
  type BackendSource,
  createFederatedSource,
  type DomainNseEvent,
  domainFind,
  FEDERATED_PRIORITY,
  type FederatedSourceOptions,
} from "./federated.js";
export { newInterdomainSwitch } from "./interdomain.js";
export { createNsmgrRegistry, type NsmgrRegistry, type NsmgrRegistryOptions } from "./nsmgr.js";
export { createRegistryProxyDns, type RegistryProxyDns, type RegistryProxyDnsOptions } from "./proxydns.js";
export { createRegistrar, endpointEntry, ensureNetworkServices, type Registrar, type RegistrarOptions } from "./registrar.js";
export { createRegistryServer, type RegistryServer, type RegistryServerOptions } from "./server.js";
