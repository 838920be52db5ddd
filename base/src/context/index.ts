/**
 * The call context every chain element receives (registry and networkservice alike): signal, deadline on the
 * chain's clock, logger, peer identity, per-connection metadata, typed values, and the call's trace.
 */

export { contextFromCall, type ServeOptions } from "./call.js";
export { CallContext, ContextKey, type ContextOptions, type PeerInfo } from "./context.js";
export { ConnectionMetadata, MetadataMap, MetaKey } from "./metadata.js";
export { inSpan, traceKey, traceMetadata } from "./trace.js";
