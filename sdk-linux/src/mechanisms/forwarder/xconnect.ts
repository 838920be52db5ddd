/**
 * What a forwarder cross-connect is made of: the two legs the mechanisms describe, what `KernelDataplane.program`
 * is asked for, and what it built (kept in per-connection metadata so a refresh changes only the differences).
 */
import type { ConnectionContext } from "@nsm-ts/api/networkservice";
import type { Netns } from "../../netns.js";
import type { LegConfig, Side } from "./context.js";

/** One side of a cross-connect as the mechanisms describe it. */
export type Leg =
  | { readonly type: "KERNEL"; readonly netnsUrl: string; readonly ifName: string }
  | { readonly type: "VXLAN"; readonly vni: number; readonly local: string; readonly remote: string; readonly port: number };

/**
 * How the forwarder-side veth end is joined to the VXLAN device: a Linux bridge (default; only `ip`), or tc ingress
 * redirects both ways (needs `tc` with the u32 classifier and mirred action; bypasses br_netfilter, so a host
 * whose FORWARD chain drops bridged traffic does not affect it).
 */
export type RemoteJoin = "bridge" | "tc";

/** Roles written into the alias of each link. */
export const Role = { CLIENT: "client", ENDPOINT: "endpoint", FWD: "fwd", VXLAN: "vxlan", BRIDGE: "bridge" } as const;

/** One pod end of a cross-connect: its netns, interface and the configuration applied to it. */
export interface PodState {
  netns: Netns;
  ifName: string;
  side: Side;
  config: LegConfig;
}

/** What was programmed for one connection (kept in per-connection metadata). */
export interface Applied {
  /** The legs it was built for; another value means rebuild. */
  readonly topology: string;
  readonly pods: PodState[];
  /** Names in the forwarder's netns (remote legs only). */
  readonly fwd?: { veth: string; vxlan: string; bridge: string | undefined; vni: number; remote: string; local: string; port: number };
  mtu: number | undefined;
  /** Every netns touched (for removal by alias). */
  readonly netnsUrls: string[];
}

/** What `program` needs for one connection. */
export interface XconnectSpec {
  readonly connectionId: string;
  /** The connection's client side (the incoming mechanism of the forwarder). */
  readonly server: Leg;
  /** The connection's endpoint side (the mechanism the next hop chose). */
  readonly client: Leg;
  readonly context: ConnectionContext | undefined;
  /** MTU for every link of the connection; undefined keeps the kernel default. */
  readonly mtu: number | undefined;
}

/** The names `ap` built in `ns`. */
export function namesIn(ap: Applied, ns: Netns, own: Netns): string[] {
  const names = ap.pods.filter((p) => p.netns.sameAs(ns)).map((p) => p.ifName);
  if (ap.fwd && ns.sameAs(own)) names.push(ap.fwd.veth, ap.fwd.vxlan, ...(ap.fwd.bridge === undefined ? [] : [ap.fwd.bridge]));
  return names;
}
