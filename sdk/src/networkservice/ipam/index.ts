/**
 * IPAM for endpoints: address pools carved from prefixes, the point-to-point IPAM element, and the prefix
 * helpers other elements use (excluded-prefix overlap checks).
 */

export { type Cidr, contains, formatAddress, formatCidr, overlaps, parseAddress, parseCidr } from "./cidr.js";
export * as point2pointipam from "./point2pointipam/index.js";
export { type AddressPair, AddressPool, createAddressPool, type Lease } from "./pool.js";
export * as resourceipam from "./resourceipam/index.js";
