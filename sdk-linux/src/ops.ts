/**
 * Typed kernel operations on links, addresses, routes and neighbours. Changes are collected in a `Batch`
 * per namespace and delivered by the `IpExecutor` (one `ip -batch -` process per commit by default);
 * single-change helpers are one-line batches. Reads use `ip -json`.
 */
import { Code, fail, StatusError } from "@nsm-ts/base/status";
import { createIpExecutor, type IpExecutor, type IpExecutorOptions, type IpLine, type IpMode } from "./executor.js";
import { type OwnerMark, parseOwnerAlias, validateAlias, validateIfName } from "./names.js";
import type { Netns } from "./netns.js";
import { cidrFamily, ipFamily, validateMac, validateMtu, validateUint } from "./validate.js";

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

/** A link as the kernel reports it. */
export interface LinkInfo {
  ifindex: number;
  name: string;
  mtu: number;
  /** Operational state (`UP`, `DOWN`, `LOWERLAYERDOWN`, `UNKNOWN`). */
  operState: string;
  /** Administrative state (IFF_UP). */
  up: boolean;
  flags: string[];
  mac?: string;
  alias?: string;
  /** Decoded nsm-ts ownership mark, if the alias is one. */
  owner?: OwnerMark;
  /** `veth`, `vxlan`, … (absent for plain devices such as `lo`). */
  kind?: string;
  /** ifindex of the veth peer / lower device (in its own namespace). */
  linkIndex?: number;
  /** VXLAN parameters when `kind` is `vxlan`. */
  vxlan?: { vni: number; local?: string; remote?: string; port?: number };
  /** Addresses as `addr/len`. */
  addresses: string[];
}

/** A route as the kernel reports it. */
export interface RouteInfo {
  family: 4 | 6;
  /** `default` or `addr/len` (host routes are reported without a length by iproute2, we add it). */
  dst: string;
  gateway?: string;
  dev?: string;
  metric?: number;
  scope?: string;
}

/** A neighbour entry as the kernel reports it. */
export interface NeighborInfo {
  address: string;
  mac?: string;
  dev: string;
  state: string[];
}

function line(what: string, ...args: string[]): IpLine {
  return { what, args };
}

/** Collects changes for one namespace; `commit` delivers them in order (one process in batch mode). */
export class Batch {
  readonly #exec: IpExecutor;
  readonly #lines: IpLine[] = [];
  #committed = false;
  /** The namespace every line runs in. */
  readonly netns: Netns;

  /** Use `KernelOps.batch`. */
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
    this.#push(
      line(
        `addVeth ${spec.name}/${spec.peerName}`,
        "link",
        "add",
        "name",
        spec.name,
        ...mtu,
        "type",
        "veth",
        "peer",
        "name",
        spec.peerName,
        ...mtu,
        ...peerNs,
      ),
    );
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
    return this.#push(
      line(
        `moveLink ${name} to ${target}${newName ? ` as ${newName}` : ""}`,
        "link",
        "set",
        "dev",
        name,
        "netns",
        target.linkTarget,
        ...rename,
      ),
    );
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
    return this.#push(
      line(
        `addNeighbor ${spec.address} on ${spec.dev}`,
        "neigh",
        opts.replace ? "replace" : "add",
        spec.address,
        "lladdr",
        mac,
        "dev",
        spec.dev,
        "nud",
        "permanent",
      ),
    );
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

/** Options of `createKernelOps`. */
export type KernelOpsOptions = IpExecutorOptions;

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}
function str(v: unknown): string | undefined {
  return typeof v === "string" ? v : undefined;
}
function num(v: unknown): number | undefined {
  return typeof v === "number" ? v : undefined;
}
function parseJsonArray(out: string, what: string): Record<string, unknown>[] {
  const text = out.trim();
  if (text === "") return [];
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (err) {
    throw new StatusError(Code.Internal, `kernel: ${what}: cannot parse ip -json output`, { cause: err });
  }
  if (!Array.isArray(v)) fail(Code.Internal, `kernel: ${what}: ip -json output is not an array`);
  return v.filter(isRecord);
}

/** Converts one object of `ip -json -d addr show` into a LinkInfo. Exported for unit tests. */
export function parseLink(o: Record<string, unknown>): LinkInfo {
  const flags = Array.isArray(o.flags) ? o.flags.filter((f): f is string => typeof f === "string") : [];
  const info: LinkInfo = {
    ifindex: num(o.ifindex) ?? 0,
    name: str(o.ifname) ?? "",
    mtu: num(o.mtu) ?? 0,
    operState: str(o.operstate) ?? "UNKNOWN",
    up: flags.includes("UP"),
    flags,
    addresses: [],
  };
  const mac = str(o.address);
  if (mac !== undefined) info.mac = mac;
  const alias = str(o.ifalias);
  if (alias !== undefined && alias !== "") {
    info.alias = alias;
    const owner = parseOwnerAlias(alias);
    if (owner) info.owner = owner;
  }
  const li = num(o.link_index);
  if (li !== undefined) info.linkIndex = li;
  if (isRecord(o.linkinfo)) {
    const kind = str(o.linkinfo.info_kind);
    if (kind !== undefined) info.kind = kind;
    const d = o.linkinfo.info_data;
    if (kind === "vxlan" && isRecord(d)) {
      const vx: NonNullable<LinkInfo["vxlan"]> = { vni: num(d.id) ?? 0 };
      const local = str(d.local) ?? str(d.local6);
      const remote = str(d.remote) ?? str(d.remote6);
      const port = num(d.port);
      if (local !== undefined) vx.local = local;
      if (remote !== undefined) vx.remote = remote;
      if (port !== undefined) vx.port = port;
      info.vxlan = vx;
    }
  }
  if (Array.isArray(o.addr_info)) {
    for (const a of o.addr_info) {
      if (!isRecord(a)) continue;
      const local = str(a.local);
      const len = num(a.prefixlen);
      if (local !== undefined && len !== undefined) info.addresses.push(`${local}/${len}`);
    }
  }
  return info;
}

/** Converts one object of `ip -json route show` into a RouteInfo. Exported for unit tests. */
export function parseRoute(o: Record<string, unknown>, family: 4 | 6): RouteInfo {
  let dst = str(o.dst) ?? "default";
  if (dst !== "default" && !dst.includes("/")) dst = `${dst}/${family === 4 ? 32 : 128}`;
  const r: RouteInfo = { family, dst };
  const gw = str(o.gateway);
  if (gw !== undefined) r.gateway = gw;
  const dev = str(o.dev);
  if (dev !== undefined) r.dev = dev;
  const metric = num(o.metric);
  if (metric !== undefined) r.metric = metric;
  const scope = str(o.scope);
  if (scope !== undefined) r.scope = scope;
  return r;
}

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
  async getLink(netns: Netns, name: string): Promise<LinkInfo | undefined> {
    validateIfName(name);
    try {
      const out = await this.#exec.query(netns, ["-json", "-d", "addr", "show", "dev", name], `getLink ${name}`);
      const o = parseJsonArray(out, `getLink ${name}`)[0];
      return o ? parseLink(o) : undefined;
    } catch (err) {
      if (err instanceof StatusError && err.code === Code.NotFound && /does not exist|Cannot find device/.test(err.message))
        return undefined;
      throw err;
    }
  }

  /** All links of a namespace with their addresses. */
  async listLinks(netns: Netns): Promise<LinkInfo[]> {
    const out = await this.#exec.query(netns, ["-json", "-d", "addr", "show"], "listLinks");
    return parseJsonArray(out, "listLinks").map(parseLink);
  }

  /** Links whose alias starts with `prefix` (e.g. `ownerPrefix("forwarder-1")`): what nsm-ts left behind. */
  async listOwned(netns: Netns, prefix: string): Promise<LinkInfo[]> {
    return (await this.listLinks(netns)).filter((l) => l.alias?.startsWith(prefix) ?? false);
  }

  /**
   * Deletes the links `listOwned` finds, except those `keep` accepts (adopted ones). Links already gone
   * (a veth end whose peer was deleted first) are skipped. Returns the names deleted.
   */
  async removeOwned(netns: Netns, prefix: string, keep: (l: LinkInfo) => boolean = () => false): Promise<string[]> {
    const removed: string[] = [];
    for (const l of await this.listOwned(netns, prefix)) {
      if (keep(l)) continue;
      try {
        await this.deleteLink(netns, l.name);
        removed.push(l.name);
      } catch (err) {
        if (!(err instanceof StatusError && err.code === Code.NotFound)) throw err;
      }
    }
    return removed;
  }

  /** IPv4 and IPv6 routes of the main table. */
  async listRoutes(netns: Netns): Promise<RouteInfo[]> {
    const [v4, v6] = await Promise.all([
      this.#exec.query(netns, ["-json", "-4", "route", "show"], "listRoutes"),
      this.#exec.query(netns, ["-json", "-6", "route", "show"], "listRoutes"),
    ]);
    return [
      ...parseJsonArray(v4, "listRoutes").map((o) => parseRoute(o, 4)),
      ...parseJsonArray(v6, "listRoutes").map((o) => parseRoute(o, 6)),
    ];
  }

  /** Neighbour (ARP/ND) entries. */
  async listNeighbors(netns: Netns): Promise<NeighborInfo[]> {
    const out = await this.#exec.query(netns, ["-json", "neigh", "show"], "listNeighbors");
    return parseJsonArray(out, "listNeighbors").map((o) => {
      const n: NeighborInfo = {
        address: str(o.dst) ?? "",
        dev: str(o.dev) ?? "",
        state: Array.isArray(o.state) ? o.state.filter((s): s is string => typeof s === "string") : [],
      };
      const mac = str(o.lladdr);
      if (mac !== undefined) n.mac = mac;
      return n;
    });
  }
}

/** Creates kernel operations; `mode` picks batched (default) or per-command delivery. */
export function createKernelOps(opts: KernelOpsOptions = {}): KernelOps {
  return new KernelOps(createIpExecutor(opts));
}
