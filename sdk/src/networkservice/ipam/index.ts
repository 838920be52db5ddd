/**
 * IPAM for endpoints: address pools carved from prefixes and the point-to-point, resource-manager and vL3 IPAM
 * elements. Address and prefix arithmetic is `@nsm-ts/base/netaddr`.
 */

export * as point2pointipam from "./point2pointipam/index.js";
export { type AddressPair, AddressPool, createAddressPool, type Lease } from "./pool.js";
export * as resourceipam from "./resourceipam/index.js";
export * as vl3 from "./vl3/index.js";
