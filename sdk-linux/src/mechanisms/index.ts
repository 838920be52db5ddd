/**
 * Kernel mechanism elements: KERNEL for endpoints, the kernel forwarder's cross-connect (veth pairs, VXLAN legs
 * bridged in the forwarder's netns), VXLAN helpers, the start-up privilege check and leftover cleanup.
 */
export * as kernel from "./kernel/index.js";
export * as vxlan from "./vxlan/index.js";
export { createKernelForwarder, type KernelForwarder, type KernelForwarderOptions } from "./forwarder/forwarder.js";
export { KernelDataplane, Role, type Leg, type Applied, type XconnectSpec, type RemoteJoin } from "./forwarder/dataplane.js";
export { legConfig, normalizePrefix, covers, type LegConfig, type Side } from "./forwarder/context.js";
export { checkKernelCapable, effectiveCapabilities, Capability, type CapableOptions } from "./capable.js";
export { adoptOrRemoveLeftovers, type LeftoverOptions, type LeftoverReport } from "./leftovers.js";
