/**
 * IPAM for endpoints: address pools carved from prefixes and the point-to-point and resource-manager IPAM
 * elements. Address and prefix arithmetic is `@nsm-ts/base/netaddr`.
 */

export * as point2pointipam from "./point2pointipam/index.js";
export { type AddressPair, AddressPool, createAddressPool, type Lease } from "./pool.js";
export * as resourceipam from "./resourceipam/index.js";
