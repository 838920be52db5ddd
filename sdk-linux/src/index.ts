/**
 * @nsm-ts/sdk-linux: the Linux kernel data plane. End-user pieces first: network-namespace handles, the KERNEL
 * mechanism for endpoints, and the kernel forwarder's data plane; then the typed link, address, route, neighbour
 * and VXLAN operations underneath, delivered through batched `ip` calls.
 *
 * A KERNEL client needs no element from here, only its netns URL: it offers
 * `mechanisms.kernel.mechanism({ netnsUrl: netnsInodeUrl() })` from `@nsm-ts/sdk/networkservice`.
 */

// Each section comment stands apart (blank lines around it) so that Biome sorts within a section, not across.

// Network-namespace handles.

export { createNamedNetns, currentNetns, deleteNamedNetns, Netns, type NetnsTools, netnsInodeUrl, openNetns } from "./netns.js";

// The local DNS forwarder's resolver config: take it over, restore it (and recover it after a crash).

export { isMountPoint, RESOLV_CONF_MARKER, ResolvConfOwner } from "./dns/resolvconf.js";

// KERNEL mechanism for endpoints (`kernel.newServer`), VXLAN mechanism helpers (builder, VNI allocation).

export * as kernel from "./mechanisms/kernel/index.js";
export * as vxlan from "./mechanisms/vxlan/index.js";

// The kernel forwarder's data plane: privilege check, cleanup after a restart, mechanism elements, cross-connects.

export { type CapableOptions, checkKernelCapable } from "./mechanisms/capable.js";
export { KernelDataplane } from "./mechanisms/forwarder/dataplane.js";
export { createKernelForwarder, type KernelForwarder, type KernelForwarderOptions } from "./mechanisms/forwarder/forwarder.js";
export { type Applied, type Leg, type RemoteJoin, Role, type XconnectSpec } from "./mechanisms/forwarder/xconnect.js";
export { adoptOrRemoveLeftovers, type LeftoverOptions, type LeftoverReport } from "./mechanisms/leftovers.js";

// Lower level: how `ip` runs, the changes (a Batch per namespace) and the reads.

export type { CommandResult, CommandRunner, RunOptions } from "./exec.js";
export { createIpExecutor, IP_MODES, type IpExecutor, type IpExecutorOptions, type IpLine, type IpMode } from "./executor.js";
export { Batch } from "./ops/batch.js";
export { listOwned, removeOwned } from "./ops/owned.js";
export { getLink, getLinks, type LinkInfo, listLinks, listNeighbors, listRoutes, type NeighborInfo, type RouteInfo } from "./ops/read.js";
export type { AddressOptions, NeighborSpec, RouteSpec, VethSpec, VxlanSpec } from "./ops/specs.js";

// Lower level: ownership marks, interface names, netns URLs, VXLAN MTU.

export {
  ALIAS_PREFIX,
  isValidIfName,
  MAX_ALIAS_LEN,
  MAX_IFNAME_LEN,
  type OwnerMark,
  ownerAlias,
  ownerPrefix,
  parseOwnerAlias,
  validateAlias,
  validateIfName,
} from "./names.js";
export { NETNS_RUN_DIR, type NetnsKind, type NetnsLocation, parseNetnsUrl, validateNetnsName } from "./netns.js";
export { VXLAN_OVERHEAD_V4, VXLAN_OVERHEAD_V6, vxlanMtu } from "./validate.js";

// nftables: whole tables of ours applied atomically in a namespace, listed, and removed as leftovers.

export * as nft from "./nft/index.js";

// Enforcement on connections: security groups, route tables and policy routes of a connection's port.

export * as enforcement from "./enforcement/index.js";

// Services: ServiceIP load balancing rendered into one nftables table per (client namespace, service), reconciled.

export * as services from "./services/index.js";

// Internal: exported for sibling workspaces only.

/** @internal The default process runner; integration-linux and bench run `ping` and `ip -V` with it. */
export { runCommand } from "./exec.js";
