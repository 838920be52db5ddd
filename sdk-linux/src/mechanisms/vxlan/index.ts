/** VXLAN mechanism helpers: builder, accessors and VNI allocation (contract §9.5). */
export { mechanism, isVxlan, vniOf, vniParity, allocateVni, compareIp, DEFAULT_VXLAN_PORT, MAX_VNI } from "./vni.js";
