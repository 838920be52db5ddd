/**
 * VXLAN mechanism helpers: builder, accessors and VNI allocation (random, its parity set by the order of the two
 * tunnel addresses).
 */
export { allocateVni, compareIp, DEFAULT_VXLAN_PORT, isVxlan, MAX_VNI, mechanism, vniOf, vniParity } from "./vni.js";
