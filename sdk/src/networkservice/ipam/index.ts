/**
 * IPAM for endpoints: address pools carved from prefixes, the point-to-point IPAM element, and the prefix
 * helpers other elements use (excluded-prefix overlap checks).
 */
export * as point2pointipam from "./point2pointipam/index.js";
export * as resourceipam from "./resourceipam/index.js";
export { AddressPool, createAddressPool, type AddressPair, type Lease } from "./pool.js";
export { parseCidr, parseAddress, formatCidr, formatAddress, overlaps, contains, type Cidr } from "./cidr.js";
