/**
 * nsm-ts typed gRPC layer: grpc-js carries the bytes, protobuf-es owns the messages, and this thin layer
 * adds async handlers, typed clients, AbortSignal, deadlines readable on the server, async-iterable
 * streams, metadata/headers, interceptors, health, TLS/mTLS, and `tcp://` / `unix://` URLs.
 */
export { grpcServiceDefinition, methodPath } from "./definition.js";
export { parseUrl, formatUrl, type ParsedUrl } from "./url.js";
export { createServer, type NsmServer, type ServerOptions } from "./server.js";
export { dial, createClient, type Channel, type DialOptions } from "./client.js";
export { healthService, type HealthStatus } from "./health.js";
export type {
  CallOptions,
  ServerCallContext,
  ServiceImpl,
  Client,
  ClientMethod,
  MethodHandler,
  UnaryHandler,
  ServerStreamingHandler,
  ClientStreamingHandler,
  BidiStreamingHandler,
  ServerCall,
  ServerHandlerFn,
  ServerInterceptor,
  ClientCall,
  ClientCallFn,
  ClientInterceptor,
  TlsFiles,
} from "./types.js";
