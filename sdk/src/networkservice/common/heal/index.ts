/** heal element (client): watches the next hop's monitor stream and re-establishes lost connections. See README.md. */
export {
  type EndpointLookup,
  grpcEndpointLookup,
  grpcMonitorSource,
  type HealClient,
  type HealEvent,
  type HealOptions,
  type HealStatus,
  type LivenessCheck,
  type MonitorSource,
  newClient,
} from "./client.js";
