/** nsm-ts resource managers, proto package `nsmts.resources.v1` (networks, subnets, IPs, MACs, ports, security groups, route tables, virtual IPs, DNS records, nodes). */

export * from "../gen/nsmts/resources/v1/edge_pb.js";
export * from "../gen/nsmts/resources/v1/resources_pb.js";
