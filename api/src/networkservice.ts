/**
 * Upstream proto packages `networkservice`, `connection` and `connectioncontext`: messages, schemas and the
 * `NetworkService` / `MonitorConnection` service descriptors (protobuf-es v2).
 */

export * from "../gen/connection_pb.js";
export * from "../gen/connectioncontext_pb.js";
export * from "../gen/networkservice_pb.js";
