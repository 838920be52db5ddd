/** VXLAN mechanism helpers: builder, accessors and VNI allocation (contract §9.5). */
export { allocateVni, compareIp, DEFAULT_VXLAN_PORT, isVxlan, MAX_VNI, mechanism, vniOf, vniParity } from "./vni.js";
