/** What a change describes: the inputs of the `Batch` methods that take more than a name (`Batch` validates them). */
import type { Netns } from "../netns.js";

/** A veth pair; both ends are created in the batch's namespace unless `peerNetns` says otherwise. */
export interface VethSpec {
  /** Name of the end that stays in the batch's namespace (≤ 15 bytes). */
  name: string;
  /** Name of the other end (≤ 15 bytes, unique in its namespace). */
  peerName: string;
  /** Create the peer directly in this namespace (saves a move). */
  peerNetns?: Netns;
  /** MTU of both ends. */
  mtu?: number;
  /** Alias of `name` (the ownership mark); the kernel ignores aliases at creation, so this adds a `set` line. */
  alias?: string;
  /** Alias of the peer; only allowed when the peer stays in the batch's namespace. */
  peerAlias?: string;
}

/** A VXLAN device. */
export interface VxlanSpec {
  /** Device name (≤ 15 bytes). */
  name: string;
  /** VXLAN network identifier, 1..16777215. */
  vni: number;
  /** Remote tunnel endpoint (the other forwarder's NSM_TUNNEL_IP). */
  remote: string;
  /** Local tunnel address; same family as `remote`. */
  local?: string;
  /** UDP destination port; default 4789 (IANA), as upstream NSM. */
  dstPort?: number;
  /** Underlay device to bind to. */
  dev?: string;
  /** MTU; leave room for the 50 (IPv4) / 70 (IPv6) bytes of VXLAN overhead. */
  mtu?: number;
  /** Alias (ownership mark); adds a `set` line after creation. */
  alias?: string;
}

/** A route; `dst` is `addr/len` or `default`. */
export interface RouteSpec {
  dst: string;
  /** Next hop; without it the route is on-link via `dev`. */
  gateway?: string;
  /** Output device. */
  dev?: string;
  /** Preferred source address. */
  src?: string;
  /** Route metric. */
  metric?: number;
  /** Treat the gateway as directly reachable even without a covering prefix on `dev`. */
  onlink?: boolean;
}

/** A static (permanent) neighbour entry: ARP for IPv4, ND for IPv6. */
export interface NeighborSpec {
  address: string;
  /** MAC address; required to add, ignored on delete. */
  mac?: string;
  dev: string;
}

/** Options of address changes. */
export interface AddressOptions {
  /** Use `addr replace` (idempotent). Default false. */
  replace?: boolean;
  /**
   * Skip IPv6 duplicate address detection (`nodad`). Default true: on a veth we just created DAD only delays
   * the first packet by about a second.
   */
  noDad?: boolean;
}
