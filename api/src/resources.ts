/** nsm-ts resource managers, proto package `nsmts.resources.v1` (networks, subnets, IPs, MACs, ports, security groups, route tables). */
export * from "../gen/nsmts/resources/v1/resources_pb.js";
