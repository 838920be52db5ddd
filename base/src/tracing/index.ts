/**
 * OpenTelemetry tracing for nsm-ts (off unless a program creates it): a span per RPC on servers and clients,
 * a span per chain element, and the W3C `traceparent`/`tracestate` metadata carrying the trace across every
 * hop. The transport only sees metadata, so the chain hands its active span to the next client call by
 * writing `traceparent` into that call's metadata (`injectTrace`), and the client interceptor reads it back as
 * its parent.
 */
import {
  type Context,
  defaultTextMapGetter,
  defaultTextMapSetter,
  ROOT_CONTEXT,
  type Span,
  SpanKind,
  SpanStatusCode,
  type Tracer,
  trace,
} from "@opentelemetry/api";
import { W3CTraceContextPropagator } from "@opentelemetry/core";
import type { SpanExporter } from "@opentelemetry/sdk-trace-base";
import type { ClientInterceptor, ServerCallContext, ServerInterceptor } from "../grpc/index.js";
import { lazyRequire } from "../lazy.js";
import { Code, StatusError } from "../status/index.js";

/** The span a call or chain element runs in, with the tracer that makes its children. */
export interface ActiveTrace {
  /** Makes child spans (the program's tracer). */
  readonly tracer: Tracer;
  /** An OpenTelemetry context holding the active span. */
  readonly context: Context;
}

/** Options of `createTracing`. */
export interface TracingOptions {
  /** `service.name` of every span (the program's `NSM_NAME`). */
  serviceName: string;
  /**
   * OTLP/HTTP collector: `host:port` (as `NSM_OPEN_TELEMETRY_ENDPOINT`, sent to `http://host:port/v1/traces`)
   * or a full http(s) URL. Ignored when `exporter` is given.
   */
  endpoint?: string;
  /** Exporter to use instead of OTLP (tests pass an InMemorySpanExporter); spans are exported one by one. */
  exporter?: SpanExporter;
}

/** A program's tracing: interceptors for its servers and dialers, and shutdown (flushes pending spans). */
export interface Tracing {
  /** The tracer of this program. */
  readonly tracer: Tracer;
  /** Starts a SERVER span per call, child of the incoming `traceparent`; see `traceOfCall`. */
  readonly serverInterceptor: ServerInterceptor;
  /** Starts a CLIENT span per call, child of the `traceparent` already in the call's metadata, and sends its own. */
  readonly clientInterceptor: ClientInterceptor;
  /** Flushes and stops exporting. */
  close(): Promise<void>;
}

const propagator = new W3CTraceContextPropagator();
// The SDK and the exporter load only when a program turns tracing on (the API and the propagator are small).
const sdk = lazyRequire<typeof import("@opentelemetry/sdk-trace-base")>("@opentelemetry/sdk-trace-base");
const otlp = lazyRequire<typeof import("@opentelemetry/exporter-trace-otlp-http")>("@opentelemetry/exporter-trace-otlp-http");
const resources = lazyRequire<typeof import("@opentelemetry/resources")>("@opentelemetry/resources");
const callTraces = new WeakMap<ServerCallContext, ActiveTrace>();

/** The OTLP/HTTP traces URL for `NSM_OPEN_TELEMETRY_ENDPOINT` (`host:port` or a URL). */
export function otlpTracesUrl(endpoint: string): string {
  return /^https?:\/\//.test(endpoint) ? endpoint : `http://${endpoint}/v1/traces`;
}

/** Creates a tracer provider exporting to the collector (or `exporter`) and the interceptors using it. */
export function createTracing(opts: TracingOptions): Tracing {
  const { BasicTracerProvider, BatchSpanProcessor, SimpleSpanProcessor } = sdk();
  const processor = opts.exporter
    ? new SimpleSpanProcessor(opts.exporter)
    : new BatchSpanProcessor(new (otlp().OTLPTraceExporter)({ url: otlpTracesUrl(opts.endpoint ?? "localhost:4318") }));
  const provider = new BasicTracerProvider({
    resource: resources().resourceFromAttributes({ "service.name": opts.serviceName }),
    spanProcessors: [processor],
  });
  const tracer = provider.getTracer("nsm-ts");
  return {
    tracer,
    serverInterceptor: tracingServerInterceptor(tracer),
    clientInterceptor: tracingClientInterceptor(tracer),
    close: () => provider.shutdown(),
  };
}

function endSpan(span: Span, err: unknown): void {
  if (err === undefined) {
    span.setAttribute("rpc.grpc.status_code", Code.OK);
  } else {
    const code = err instanceof StatusError ? err.code : Code.Unknown;
    span.setAttribute("rpc.grpc.status_code", code);
    span.setStatus({ code: SpanStatusCode.ERROR, message: err instanceof Error ? err.message : String(err) });
  }
  span.end();
}

function rpcAttributes(path: string): Record<string, string> {
  const [, service = "", method = ""] = path.split("/");
  return { "rpc.system": "grpc", "rpc.service": service, "rpc.method": method };
}

/** Runs `fn` and ends `span` with its outcome. */
async function ended<R>(span: Span, fn: () => Promise<R>): Promise<R> {
  try {
    const res = await fn();
    endSpan(span, undefined);
    return res;
  } catch (err) {
    endSpan(span, err);
    throw err;
  }
}

/** Server interceptor: a SERVER span per call whose parent is the caller's `traceparent`. */
export function tracingServerInterceptor(tracer: Tracer): ServerInterceptor {
  return (next) => async (call) => {
    const parent = propagator.extract(ROOT_CONTEXT, call.ctx.metadata, defaultTextMapGetter);
    const span = tracer.startSpan(call.path, { kind: SpanKind.SERVER, attributes: rpcAttributes(call.path) }, parent);
    callTraces.set(call.ctx, { tracer, context: trace.setSpan(parent, span) });
    return ended(span, () => next(call));
  };
}

/** Client interceptor: a CLIENT span per call, child of the metadata's `traceparent` (a new trace without one). */
export function tracingClientInterceptor(tracer: Tracer): ClientInterceptor {
  return (next) => async (call) => {
    const parent = propagator.extract(ROOT_CONTEXT, call.metadata, defaultTextMapGetter);
    const span = tracer.startSpan(call.path, { kind: SpanKind.CLIENT, attributes: rpcAttributes(call.path) }, parent);
    delete call.metadata.tracestate;
    propagator.inject(trace.setSpan(parent, span), call.metadata, defaultTextMapSetter);
    return ended(span, () => next(call));
  };
}

/** The trace of a server call, set by the tracing server interceptor; undefined when tracing is off. */
export function traceOfCall(sctx: ServerCallContext): ActiveTrace | undefined {
  return callTraces.get(sctx);
}

/** Starts an INTERNAL child span of `parent` (a chain element) and returns it with the trace to pass on. */
export function startChildSpan(parent: ActiveTrace, name: string): { span: Span; trace: ActiveTrace } {
  const span = parent.tracer.startSpan(name, { kind: SpanKind.INTERNAL }, parent.context);
  return { span, trace: { tracer: parent.tracer, context: trace.setSpan(parent.context, span) } };
}

/** Ends a span started by `startChildSpan`, marking it failed when `err` is given. */
export function endChildSpan(span: Span, err?: unknown): void {
  if (err !== undefined) span.setStatus({ code: SpanStatusCode.ERROR, message: err instanceof Error ? err.message : String(err) });
  span.end();
}

/** Writes the trace's `traceparent` (and `tracestate`) into outgoing call metadata, so the next hop is a child. */
export function injectTrace(t: ActiveTrace, metadata: Record<string, string>): void {
  propagator.inject(t.context, metadata, defaultTextMapSetter);
}

/** Starts a root trace for work that begins in this program (a client's Request); end the span when done. */
export function startRootSpan(tracer: Tracer, name: string): { span: Span; trace: ActiveTrace } {
  return startChildSpan({ tracer, context: ROOT_CONTEXT }, name);
}
