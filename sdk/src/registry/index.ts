/**
 * @nsm-ts/sdk/registry: the registry chain core, one namespace per element (`updatepath.newServer(gen)`,
 * `refresh.newClient()`, …, written once for network services and endpoints), the stores, the chains and the
 * gRPC serving adapter.
 */

// Start here: the registrar for endpoint authors, the client and server chains, the nsmgr's registry proxy.

export {
  type BackendEvent,
  type BackendSource,
  createFederatedSource,
  createNsmgrRegistry,
  createRegistrar,
  createRegistryClient,
  createRegistryProxyDns,
  createRegistryServer,
  type DomainNseEvent,
  domainFind,
  endpointEntry,
  ensureNetworkServices,
  FEDERATED_PRIORITY,
  type FederatedSourceOptions,
  type NsmgrRegistry,
  type NsmgrRegistryOptions,
  newInterdomainSwitch,
  type Registrar,
  type RegistrarOptions,
  type RegistryClientOptions,
  type RegistryProxyDns,
  type RegistryProxyDnsOptions,
  type RegistryServer,
  type RegistryServerOptions,
} from "./chains/index.js";

// Serving and storing: the gRPC adapter and the memory and etcd stores.

export { type RegistryServeOptions, serveRegistry } from "./grpc/index.js";

export {
  createEtcdStore,
  createMemoryStore,
  DEFAULT_ETCD_PREFIX,
  DEFAULT_WATCH_BUFFER,
  type EtcdStoreOptions,
  type MemoryStoreOptions,
  matchNetworkService,
  matchNetworkServiceEndpoint,
  type RegistryEntryOf,
  type RegistryKind,
  type RegistryStore,
  type ServiceCollectorOptions,
  type StoreEvent,
  type StoreFindOptions,
  type StorePutOptions,
  startServiceCollector,
  type VersionedEntry,
} from "./store/index.js";

// Writing elements: the element contract and composition.

export {
  type FindQuery,
  type FindResult,
  type NsElement,
  type NseElement,
  type NseHandler,
  type NsHandler,
  type RegistryElement,
  type RegistryEntry,
  type RegistryHandler,
  registryChain,
  registryHandler,
  registryPassThrough,
  registryTail,
} from "./core/index.js";

// The elements, one namespace each, written once for network services and endpoints.

export * as authorize from "./common/authorize/index.js";
export * as begin from "./common/begin/index.js";
export * as clientinfo from "./common/clientinfo/index.js";
export * as connect from "./common/connect/index.js";
export * as dnsresolve from "./common/dnsresolve/index.js";
export * as expire from "./common/expire/index.js";
export * as grpcmetadata from "./common/grpcmetadata/index.js";
export * as heal from "./common/heal/index.js";
export * as interdomainbypass from "./common/interdomainbypass/index.js";
export * as localbypass from "./common/localbypass/index.js";
export * as querycache from "./common/querycache/index.js";
export * as refresh from "./common/refresh/index.js";
export * as retry from "./common/retry/index.js";
export * as setpayload from "./common/setpayload/index.js";
export * as setregistrationtime from "./common/setregistrationtime/index.js";
export * as store from "./common/store/index.js";
export * as swapip from "./common/swapip/index.js";
export * as updatepath from "./common/updatepath/index.js";
export * as validate from "./common/validate/index.js";
