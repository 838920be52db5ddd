/** heal element (client): watches the next hop's monitor stream and re-establishes lost connections. See README.md. */
export { newClient } from "./client.js";
export type { LivenessCheck } from "./liveness.js";
export { type EndpointLookup, grpcEndpointLookup } from "./lookup.js";
export { grpcMonitorSource, type MonitorSource, rawGrpcMonitorSource } from "./monitor.js";
export { type MonitorMuxOptions, type SharedMonitorSource, sharedMonitorSource } from "./mux.js";
export type { HealEvent, HealOptions } from "./options.js";
export type { HealClient, HealStatus } from "./status.js";
