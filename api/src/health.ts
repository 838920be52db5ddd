/** Standard `grpc.health.v1` messages and the `Health` service descriptor. */
export * from "../gen/grpc/health/v1/health_pb.js";
