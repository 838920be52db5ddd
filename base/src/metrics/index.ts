/**
 * Prometheus metrics for nsm-ts programs (one prom-client Registry per program, bounded labels, a `/metrics`
 * endpoint) and `startObservability`, which starts metrics and tracing from a program's config. See README.md.
 */

export { createMetrics, type GaugeValue, type Metrics, type MetricsOptions } from "./metrics.js";
export {
  type Observability,
  type ObservabilityConfig,
  type ObservabilityOptions,
  startObservability,
} from "./observability.js";
