/** The `KernelOps` facade over batches and reads (kept until its callers use them directly). */
import { createIpExecutor, type IpExecutor, type IpExecutorOptions, type IpMode } from "../executor.js";
import type { Netns } from "../netns.js";
import { Batch } from "./batch.js";
import { listOwned, removeOwned } from "./owned.js";
import { getLink, type LinkInfo, listLinks, listNeighbors, listRoutes, type NeighborInfo, type RouteInfo } from "./read.js";
import type { AddressOptions, NeighborSpec, RouteSpec, VethSpec, VxlanSpec } from "./specs.js";

/** Options of `createKernelOps`. */
export type KernelOpsOptions = IpExecutorOptions;

/**
 * Kernel operations on namespaces. Every change method is a one-line batch; use `batch()` to group the
 * changes of one namespace into a single process.
 */
export class KernelOps {
  readonly #exec: IpExecutor;

  /** Use `createKernelOps`. */
  constructor(exec: IpExecutor) {
    this.#exec = exec;
  }

  /** How changes are delivered (`batch` or `per-command`). */
  get mode(): IpMode {
    return this.#exec.mode;
  }

  /** Starts a batch of changes for one namespace. */
  batch(netns: Netns): Batch {
    return new Batch(this.#exec, netns);
  }

  /** Creates a veth pair (see VethSpec). */
  async addVeth(netns: Netns, spec: VethSpec): Promise<void> {
    return this.batch(netns).addVeth(spec).commit();
  }
  /** Creates a VXLAN device. */
  async addVxlan(netns: Netns, spec: VxlanSpec): Promise<void> {
    return this.batch(netns).addVxlan(spec).commit();
  }
  /** Moves a link to `target`, optionally renaming it. */
  async moveLink(netns: Netns, name: string, target: Netns, newName?: string): Promise<void> {
    return this.batch(netns).moveLink(name, target, newName).commit();
  }
  /** Renames a link. */
  async rename(netns: Netns, name: string, newName: string): Promise<void> {
    return this.batch(netns).rename(name, newName).commit();
  }
  /** Sets a link up. */
  async setUp(netns: Netns, name: string): Promise<void> {
    return this.batch(netns).setUp(name).commit();
  }
  /** Sets a link down. */
  async setDown(netns: Netns, name: string): Promise<void> {
    return this.batch(netns).setDown(name).commit();
  }
  /** Sets a link's MTU. */
  async setMtu(netns: Netns, name: string, mtu: number): Promise<void> {
    return this.batch(netns).setMtu(name, mtu).commit();
  }
  /** Sets a link's alias. */
  async setAlias(netns: Netns, name: string, alias: string): Promise<void> {
    return this.batch(netns).setAlias(name, alias).commit();
  }
  /** Adds an address. */
  async addAddress(netns: Netns, dev: string, cidr: string, opts?: AddressOptions): Promise<void> {
    return this.batch(netns).addAddress(dev, cidr, opts).commit();
  }
  /** Removes an address. */
  async delAddress(netns: Netns, dev: string, cidr: string): Promise<void> {
    return this.batch(netns).delAddress(dev, cidr).commit();
  }
  /** Adds a route. */
  async addRoute(netns: Netns, spec: RouteSpec, opts?: { replace?: boolean }): Promise<void> {
    return this.batch(netns).addRoute(spec, opts).commit();
  }
  /** Deletes a route. */
  async delRoute(netns: Netns, spec: RouteSpec): Promise<void> {
    return this.batch(netns).delRoute(spec).commit();
  }
  /** Adds a permanent neighbour entry. */
  async addNeighbor(netns: Netns, spec: NeighborSpec, opts?: { replace?: boolean }): Promise<void> {
    return this.batch(netns).addNeighbor(spec, opts).commit();
  }
  /** Deletes a neighbour entry. */
  async delNeighbor(netns: Netns, spec: NeighborSpec): Promise<void> {
    return this.batch(netns).delNeighbor(spec).commit();
  }
  /** Deletes a link. */
  async deleteLink(netns: Netns, name: string): Promise<void> {
    return this.batch(netns).deleteLink(name).commit();
  }

  /** One link with its addresses, or undefined when there is no such link (a missing netns still throws). */
  getLink(netns: Netns, name: string): Promise<LinkInfo | undefined> {
    return getLink(this.#exec, netns, name);
  }
  /** All links of a namespace with their addresses. */
  listLinks(netns: Netns): Promise<LinkInfo[]> {
    return listLinks(this.#exec, netns);
  }
  /** Links whose alias starts with `prefix`. */
  listOwned(netns: Netns, prefix: string): Promise<LinkInfo[]> {
    return listOwned(this.#exec, netns, prefix);
  }
  /** Deletes the links `listOwned` finds, except those `keep` accepts. */
  removeOwned(netns: Netns, prefix: string, keep?: (l: LinkInfo) => boolean): Promise<string[]> {
    return removeOwned(this.#exec, netns, prefix, keep);
  }
  /** IPv4 and IPv6 routes of the main table. */
  listRoutes(netns: Netns): Promise<RouteInfo[]> {
    return listRoutes(this.#exec, netns);
  }
  /** Neighbour (ARP/ND) entries. */
  listNeighbors(netns: Netns): Promise<NeighborInfo[]> {
    return listNeighbors(this.#exec, netns);
  }
}

/** Creates kernel operations; `mode` picks batched (default) or per-command delivery. */
export function createKernelOps(opts: KernelOpsOptions = {}): KernelOps {
  return new KernelOps(createIpExecutor(opts));
}
