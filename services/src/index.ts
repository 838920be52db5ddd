/**
 * Services after Cilium's load-balancer control plane and Oakestra's semantic addresses: service rows,
 * frontends (a ServiceIP per balancing policy) and backends per source in statedb tables, merged by source
 * priority, with local-redirect overrides; served as `nsmts.services.v1`, fed by the registry (this one and a
 * remote one), and followed by data planes through `followResolvedServices`.
 */
export { type AddressAllocator, createResourceAllocator, rangeOfPolicy, type ServiceRanges } from "./allocator.js";
export {
  type FollowOptions,
  followResolvedServices,
  ReconcileState,
  type ResolvedServiceUpdate,
  reportReconcileStatus,
  type ServicesClient,
  servicesClient,
} from "./client.js";
export { registerServices } from "./grpc.js";
export { ServiceModel, type ServiceModelOptions } from "./model.js";
export {
  healthName,
  POLICY_NAMES,
  parsePolicy,
  policyName,
  priorityOf,
  protocolName,
  SOURCE_PRIORITY,
  SOURCES,
  type SourceName,
  serviceOf,
} from "./names.js";
export { backendPortFor, mergeBackends, resolveService, type ServiceRows } from "./resolve.js";
export { remoteFind, storeFind } from "./sources/find.js";
export { BackendLabel, backendsOf, type NseBackend, parsePorts } from "./sources/labels.js";
export { type NseEvent, type RegistrySource, type RegistrySourceOptions, startRegistrySource } from "./sources/registry.js";
export { createServiceTables, type Epoch, type ServiceTables } from "./tables.js";
export { listResolved, type ResolvedQuery, watchResolved, watchTable } from "./watch.js";
