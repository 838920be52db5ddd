/**
 * Kernel mechanism elements: KERNEL for endpoints, the kernel forwarder's cross-connect (veth pairs, VXLAN legs
 * bridged in the forwarder's netns), VXLAN helpers, the start-up privilege check and leftover cleanup.
 */

export { Capability, type CapableOptions, checkKernelCapable, effectiveCapabilities } from "./capable.js";
export { covers, type LegConfig, legConfig, normalizePrefix, type Side } from "./forwarder/context.js";
export { type Applied, KernelDataplane, type Leg, type RemoteJoin, Role, type XconnectSpec } from "./forwarder/dataplane.js";
export { createKernelForwarder, type KernelForwarder, type KernelForwarderOptions } from "./forwarder/forwarder.js";
export * as kernel from "./kernel/index.js";
export { adoptOrRemoveLeftovers, type LeftoverOptions, type LeftoverReport } from "./leftovers.js";
export * as vxlan from "./vxlan/index.js";
