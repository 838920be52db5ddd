/**
 * The one call a program makes for metrics and tracing: from its common configuration it starts the
 * `/metrics` server (when NSM_METRICS_LISTEN_ON is set) and the tracer (when TELEMETRY=true) and returns the
 * interceptors for its servers and dialers. With neither configured the interceptor lists are empty, so an
 * unobserved program runs exactly the unobserved code path.
 */
import type { SpanExporter } from "@opentelemetry/sdk-trace-base";
import type { ClientInterceptor, ServerInterceptor } from "../grpc/index.js";
import type { Logger } from "../log/index.js";
import { createTracing, type Tracing } from "../tracing/index.js";
import { createMetrics, type Metrics } from "./metrics.js";

/** The common configuration entries `startObservability` reads (as `commonVars` parses them). */
export interface ObservabilityConfig {
  /** `NSM_NAME`: the span `service.name`. */
  name: string;
  /** `NSM_METRICS_LISTEN_ON`: `tcp://host:port` of `/metrics`; unset = no metrics. */
  metricsListenOn?: string | undefined;
  /** `TELEMETRY`: tracing on or off. */
  telemetry: boolean;
  /** `NSM_OPEN_TELEMETRY_ENDPOINT`: the OTLP/HTTP collector. */
  openTelemetryEndpoint: string;
}

/** Options of `startObservability`. */
export interface ObservabilityOptions {
  /** Program name (`cmd-nsmgr`…), the `program` label of every series. */
  program: string;
  /** Where the metrics URL and export problems are logged. */
  log: Logger;
  /** Span exporter instead of OTLP (tests). */
  exporter?: SpanExporter;
}

/** What a program wires into its servers and dialers, and closes on shutdown. */
export interface Observability {
  /** Interceptors for `createServer({ interceptors })`; empty when nothing is on. */
  readonly serverInterceptors: ServerInterceptor[];
  /** Interceptors for `dial`/`ChannelPool` (`DialOptions.interceptors`); empty when nothing is on. */
  readonly clientInterceptors: ClientInterceptor[];
  /** The metrics, when NSM_METRICS_LISTEN_ON is set (add program gauges with `metrics.gauge`). */
  readonly metrics: Metrics | undefined;
  /** The bound `/metrics` URL (`tcp://host:port`), when serving. */
  readonly metricsUrl: string | undefined;
  /** The tracing, when TELEMETRY=true. */
  readonly tracing: Tracing | undefined;
  /** Stops the metrics server and flushes spans. */
  close(): Promise<void>;
}

/** Starts what the configuration asks for; see `Observability`. */
export async function startObservability(cfg: ObservabilityConfig, opts: ObservabilityOptions): Promise<Observability> {
  const tracing = cfg.telemetry
    ? createTracing({ serviceName: cfg.name, endpoint: cfg.openTelemetryEndpoint, ...(opts.exporter ? { exporter: opts.exporter } : {}) })
    : undefined;
  const metrics = cfg.metricsListenOn !== undefined ? createMetrics({ program: opts.program }) : undefined;
  let metricsUrl: string | undefined;
  if (metrics && cfg.metricsListenOn !== undefined) {
    metricsUrl = await metrics.listen(cfg.metricsListenOn);
    opts.log.info({ url: `${metricsUrl.replace(/^tcp:/, "http:")}/metrics` }, "serving Prometheus metrics");
  }
  if (tracing) opts.log.info({ endpoint: cfg.openTelemetryEndpoint }, "OpenTelemetry tracing on (OTLP/HTTP)");
  // Tracing outermost: its span covers the metrics work and its traceparent is in the metadata first.
  const serverInterceptors: ServerInterceptor[] = [];
  const clientInterceptors: ClientInterceptor[] = [];
  if (tracing) {
    serverInterceptors.push(tracing.serverInterceptor);
    clientInterceptors.push(tracing.clientInterceptor);
  }
  if (metrics) {
    serverInterceptors.push(metrics.serverInterceptor);
    clientInterceptors.push(metrics.clientInterceptor);
  }
  return {
    serverInterceptors,
    clientInterceptors,
    metrics,
    metricsUrl,
    tracing,
    async close() {
      await Promise.allSettled([metrics?.close(), tracing?.close()]);
    },
  };
}
