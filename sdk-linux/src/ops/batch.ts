/**
 * Changes to one namespace's links, addresses, routes and neighbours, collected in a `Batch` and delivered in
 * order by an `IpExecutor` (one `ip -batch -` process per commit by default). Every argument is validated when
 * the change is added, so nothing runs when one is malformed.
 */
import { Code, fail } from "@nsm-ts/base/status";
import type { IpExecutor, IpLine } from "../executor.js";
import { validateAlias, validateIfName } from "../names.js";
import type { Netns } from "../netns.js";
import { cidrFamily, ipFamily, validateMac, validateMtu, validateUint } from "../validate.js";
import type { AddressOptions, NeighborSpec, RouteSpec, VethSpec, VxlanSpec } from "./specs.js";

function line(what: string, ...args: string[]): IpLine {
  return { what, args };
}

/**
 * Collects changes for one namespace; `commit` delivers them in order (one process in batch mode). A single
 * change is a one-line batch: `await new Batch(exec, ns).setUp("nsm-1").commit()`.
 */
export class Batch {
  readonly #exec: IpExecutor;
  readonly #lines: IpLine[] = [];
  #committed = false;
  /** The namespace every line runs in. */
  readonly netns: Netns;

  /** An empty batch for `netns`; `exec` (see `createIpExecutor`) delivers it on commit. */
  constructor(exec: IpExecutor, netns: Netns) {
    this.#exec = exec;
    this.netns = netns;
  }

  /** Number of `ip` lines collected so far. */
  get size(): number {
    return this.#lines.length;
  }

  /** The collected lines (for tests and logs). */
  get lines(): readonly IpLine[] {
    return this.#lines;
  }

  #push(l: IpLine): this {
    if (this.#committed) fail(Code.FailedPrecondition, "kernel: batch already committed");
    this.#lines.push(l);
    return this;
  }

  /** Creates a veth pair (and sets aliases where given). */
  addVeth(spec: VethSpec): this {
    validateIfName(spec.name, "veth name");
    validateIfName(spec.peerName, "veth peer name");
    const mtu = spec.mtu === undefined ? [] : ["mtu", String(validateMtu(spec.mtu))];
    const peerNs = spec.peerNetns && !spec.peerNetns.sameAs(this.netns) ? ["netns", spec.peerNetns.linkTarget] : [];
    if (spec.peerAlias !== undefined && peerNs.length > 0) {
      fail(
        Code.InvalidArgument,
        `kernel: addVeth ${spec.name}: peerAlias needs the peer in the same netns; set it with setAlias in a batch of ${spec.peerNetns}`,
      );
    }
    const args = ["link", "add", "name", spec.name, ...mtu, "type", "veth", "peer", "name", spec.peerName, ...mtu, ...peerNs];
    this.#push(line(`addVeth ${spec.name}/${spec.peerName}`, ...args));
    if (spec.alias !== undefined) this.setAlias(spec.name, spec.alias);
    if (spec.peerAlias !== undefined) this.setAlias(spec.peerName, spec.peerAlias);
    return this;
  }

  /** Creates a VXLAN device (and sets its alias if given). */
  addVxlan(spec: VxlanSpec): this {
    validateIfName(spec.name, "vxlan name");
    validateUint(spec.vni, 1, 0xffffff, "vni");
    const fam = ipFamily(spec.remote, "vxlan remote");
    const args = ["link", "add", "name", spec.name];
    if (spec.mtu !== undefined) args.push("mtu", String(validateMtu(spec.mtu)));
    args.push("type", "vxlan", "id", String(spec.vni));
    if (spec.local !== undefined) {
      if (ipFamily(spec.local, "vxlan local") !== fam)
        fail(Code.InvalidArgument, `kernel: vxlan ${spec.name}: local ${spec.local} and remote ${spec.remote} differ in family`);
      args.push("local", spec.local);
    }
    args.push("remote", spec.remote, "dstport", String(validateUint(spec.dstPort ?? 4789, 1, 65535, "vxlan dstPort")));
    if (spec.dev !== undefined) args.push("dev", validateIfName(spec.dev, "vxlan underlay dev"));
    this.#push(line(`addVxlan ${spec.name} vni ${spec.vni}`, ...args));
    if (spec.alias !== undefined) this.setAlias(spec.name, spec.alias);
    return this;
  }

  /** Moves a link into another namespace, optionally renaming it on the way (one kernel call). */
  moveLink(name: string, target: Netns, newName?: string): this {
    validateIfName(name);
    const rename = newName === undefined ? [] : ["name", validateIfName(newName, "new interface name")];
    const args = ["link", "set", "dev", name, "netns", target.linkTarget, ...rename];
    return this.#push(line(`moveLink ${name} to ${target}${newName ? ` as ${newName}` : ""}`, ...args));
  }

  /** Renames a link (older kernels need it down first). */
  rename(name: string, newName: string): this {
    validateIfName(name);
    validateIfName(newName, "new interface name");
    return this.#push(line(`rename ${name} to ${newName}`, "link", "set", "dev", name, "name", newName));
  }

  /** Sets a link administratively up. */
  setUp(name: string): this {
    return this.#push(line(`setUp ${validateIfName(name)}`, "link", "set", "dev", name, "up"));
  }

  /** Sets a link administratively down. */
  setDown(name: string): this {
    return this.#push(line(`setDown ${validateIfName(name)}`, "link", "set", "dev", name, "down"));
  }

  /** Sets the MTU of a link. */
  setMtu(name: string, mtu: number): this {
    validateIfName(name);
    return this.#push(line(`setMtu ${name} ${mtu}`, "link", "set", "dev", name, "mtu", String(validateMtu(mtu))));
  }

  /** Sets the hardware (MAC) address of a link; veth accepts it while up. */
  setMac(name: string, mac: string): this {
    validateIfName(name);
    return this.#push(line(`setMac ${name} ${mac}`, "link", "set", "dev", name, "address", validateMac(mac)));
  }

  /** Sets the alias of a link (nsm-ts uses it as the ownership mark, see `ownerAlias`). */
  setAlias(name: string, alias: string): this {
    validateIfName(name);
    return this.#push(line(`setAlias ${name}`, "link", "set", "dev", name, "alias", validateAlias(alias)));
  }

  /** Adds an address `addr/len` to a link. */
  addAddress(dev: string, cidr: string, opts: AddressOptions = {}): this {
    validateIfName(dev);
    const fam = cidrFamily(cidr, "address");
    const extra = fam === 6 && (opts.noDad ?? true) ? ["nodad"] : [];
    return this.#push(line(`addAddress ${cidr} on ${dev}`, "addr", opts.replace ? "replace" : "add", cidr, "dev", dev, ...extra));
  }

  /** Removes an address from a link. */
  delAddress(dev: string, cidr: string): this {
    validateIfName(dev);
    cidrFamily(cidr, "address");
    return this.#push(line(`delAddress ${cidr} on ${dev}`, "addr", "del", cidr, "dev", dev));
  }

  /** Adds a route (`replace` makes it idempotent). */
  addRoute(spec: RouteSpec, opts: { replace?: boolean } = {}): this {
    return this.#push(line(`addRoute ${spec.dst}`, "route", opts.replace ? "replace" : "add", ...routeArgs(spec, true)));
  }

  /** Deletes a route. */
  delRoute(spec: RouteSpec): this {
    return this.#push(line(`delRoute ${spec.dst}`, "route", "del", ...routeArgs(spec, false)));
  }

  /** Adds a permanent neighbour entry (`replace` makes it idempotent). */
  addNeighbor(spec: NeighborSpec, opts: { replace?: boolean } = {}): this {
    ipFamily(spec.address, "neighbor address");
    validateIfName(spec.dev);
    if (spec.mac === undefined) fail(Code.InvalidArgument, `kernel: addNeighbor ${spec.address}: mac is required`);
    const mac = validateMac(spec.mac, "neighbor mac");
    const args = ["neigh", opts.replace ? "replace" : "add", spec.address, "lladdr", mac, "dev", spec.dev, "nud", "permanent"];
    return this.#push(line(`addNeighbor ${spec.address} on ${spec.dev}`, ...args));
  }

  /** Deletes a neighbour entry. */
  delNeighbor(spec: NeighborSpec): this {
    ipFamily(spec.address, "neighbor address");
    validateIfName(spec.dev);
    return this.#push(line(`delNeighbor ${spec.address} on ${spec.dev}`, "neigh", "del", spec.address, "dev", spec.dev));
  }

  /** Deletes a link (deleting one veth end deletes its peer too). */
  deleteLink(name: string): this {
    return this.#push(line(`deleteLink ${validateIfName(name)}`, "link", "del", "dev", name));
  }

  /** Delivers all lines in order; a batch can be committed once. */
  async commit(): Promise<void> {
    if (this.#committed) fail(Code.FailedPrecondition, "kernel: batch already committed");
    this.#committed = true;
    await this.#exec.apply(this.netns, this.#lines);
  }
}

function routeArgs(spec: RouteSpec, adding: boolean): string[] {
  let fam: 4 | 6 | undefined;
  let dst = spec.dst;
  if (dst !== "default") fam = cidrFamily(dst, "route dst");
  const args: string[] = [];
  if (spec.gateway !== undefined) {
    const g = ipFamily(spec.gateway, "route gateway");
    if (fam !== undefined && g !== fam) fail(Code.InvalidArgument, `kernel: route ${dst}: gateway ${spec.gateway} is another family`);
    fam = g;
    args.push("via", spec.gateway);
  }
  // `default` alone means IPv4 to iproute2 in a batch (no per-line -6), so spell the IPv6 default out.
  if (dst === "default" && fam === 6) dst = "::/0";
  if (spec.dev !== undefined) args.push("dev", validateIfName(spec.dev, "route dev"));
  if (spec.src !== undefined) {
    if (ipFamily(spec.src, "route src") !== (fam ?? 4))
      fail(Code.InvalidArgument, `kernel: route ${spec.dst}: src ${spec.src} is another family`);
    args.push("src", spec.src);
  }
  if (spec.metric !== undefined) args.push("metric", String(validateUint(spec.metric, 0, 0xffffffff, "route metric")));
  if (adding && spec.onlink) args.push("onlink");
  if (spec.gateway === undefined && spec.dev === undefined && adding)
    fail(Code.InvalidArgument, `kernel: route ${spec.dst}: needs a gateway or a dev`);
  return [dst, ...args];
}
