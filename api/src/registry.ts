/** Upstream proto package `registry`: messages, schemas and both registry service descriptors. */
export * from "../gen/registry_pb.js";
