/** Upstream proto package `ipam` (vL3 prefix management). */
export * from "../gen/ipam_pb.js";
