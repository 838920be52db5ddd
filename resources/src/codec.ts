/** The protobuf schema of each record kind, so stores that serialise (etcd) can encode and decode records. */
import type { DescMessage } from "@bufbuild/protobuf";
import {
  DnsRecordSchema,
  IpAddressSchema,
  MacAddressSchema,
  NetworkSchema,
  NodeSchema,
  PortSchema,
  RouteTableSchema,
  SecurityGroupSchema,
  SubnetSchema,
  VirtualIpSchema,
} from "@nsm-ts/api/resources";
import type { ResourceKind } from "./store.js";

/** Message schema per record kind. */
export const schemaOf: Readonly<Record<ResourceKind, DescMessage>> = {
  network: NetworkSchema,
  subnet: SubnetSchema,
  ip: IpAddressSchema,
  mac: MacAddressSchema,
  port: PortSchema,
  securitygroup: SecurityGroupSchema,
  routetable: RouteTableSchema,
  vip: VirtualIpSchema,
  dns: DnsRecordSchema,
  node: NodeSchema,
};
