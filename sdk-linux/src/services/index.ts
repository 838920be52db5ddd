/**
 * Service load balancing in the kernel: a resolved service view rendered into one nftables table per
 * (client namespace, service) that DNATs ServiceIP:port to a backend chosen by the frontend's policy, and the
 * reconciler that keeps those tables applied with a status per service.
 */

export { createServiceDataplane, type ServiceDataplane, type ServiceDataplaneOptions, type ServiceRulesStatus } from "./dataplane.js";
export { withServices } from "./element.js";
export { maglevSize, maglevTable, nextPrime } from "./maglev.js";
export { pickRule, renderServiceTable, roundRobinSlots, SERVICE_TABLE_PREFIX, selectBackends, serviceTableName } from "./render.js";
export type { BackendHealth, BalancingPolicy, Locality, ServiceBackend, ServiceFrontend, ServiceProtocol, ServiceView } from "./view.js";
