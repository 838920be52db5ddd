/** The SPIFFE Workload API (no proto package: method paths `/SpiffeWorkloadAPI/<Method>`): X.509- and JWT-SVID messages and the `SpiffeWorkloadAPI` service. */
export * from "../gen/spiffe/workload/workload_pb.js";
