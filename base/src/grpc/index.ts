/**
 * nsm-ts typed gRPC layer: grpc-js carries the bytes, protobuf-es owns the messages, and this thin layer
 * adds async handlers, typed clients, AbortSignal, deadlines readable on the server, async-iterable
 * streams, metadata/headers, interceptors, health, TLS/mTLS, and `tcp://` / `unix://` URLs.
 */

export { DEFAULT_MAX_UNARY_CALLS } from "./call-slots.js";
export {
  type Channel,
  type ClientLease,
  DEFAULT_KEEPALIVE,
  type DialOptions,
  dial,
  isConnected,
  type Keepalive,
  NO_CHANNELZ,
} from "./channel.js";
export { createClient } from "./client.js";
export { grpcServiceDefinition, methodPath } from "./definition.js";
export { type HealthStatus, healthService } from "./health.js";
export { createServer, type NsmServer, type ServerOptions } from "./server.js";
export type {
  BidiStreamingHandler,
  CallOptions,
  Client,
  ClientCall,
  ClientCallFn,
  ClientInterceptor,
  ClientMethod,
  ClientStreamingHandler,
  MethodHandler,
  ServerCall,
  ServerCallContext,
  ServerHandlerFn,
  ServerInterceptor,
  ServerStreamingHandler,
  ServiceImpl,
  TlsConfig,
  TlsFiles,
  TlsMaterial,
  TlsSource,
  UnaryHandler,
} from "./types.js";
export { formatUrl, type ParsedUrl, parseUrl } from "./url.js";
