/**
 * Reads of a namespace's links, routes and neighbours through `ip -json`, and the conversion of its output
 * into typed records.
 */
import { Code, fail, StatusError } from "@nsm-ts/base/status";
import type { IpExecutor } from "../executor.js";
import { type OwnerMark, parseOwnerAlias, validateIfName } from "../names.js";
import type { Netns } from "../netns.js";

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

/** One link with its addresses, or undefined when there is no such link (a missing netns still throws). */
export async function getLink(exec: IpExecutor, netns: Netns, name: string): Promise<LinkInfo | undefined> {
  validateIfName(name);
  try {
    const out = await exec.query(netns, ["-json", "-d", "addr", "show", "dev", name], `getLink ${name}`);
    const o = parseJsonArray(out, `getLink ${name}`)[0];
    return o ? parseLink(o) : undefined;
  } catch (err) {
    if (err instanceof StatusError && err.code === Code.NotFound && /does not exist|Cannot find device/.test(err.message)) return undefined;
    throw err;
  }
}

/**
 * The links of one namespace named in `names`, with their addresses, read by name in one `ip -batch` process (so
 * the cost grows with the names asked for, not with the links in the namespace). A name without a link is absent
 * from the map; a missing namespace throws.
 */
export async function getLinks(exec: IpExecutor, netns: Netns, names: readonly string[]): Promise<Map<string, LinkInfo>> {
  for (const n of names) validateIfName(n);
  const wanted = [...new Set(names)];
  const out = new Map<string, LinkInfo>();
  if (exec.queryEach === undefined) {
    for (const n of wanted) {
      const l = await getLink(exec, netns, n);
      if (l) out.set(n, l);
    }
    return out;
  }
  const text = await exec.queryEach(
    netns,
    ["-json", "-d"],
    wanted.map((n) => ["addr", "show", "dev", n]),
    `getLinks ${wanted.join(",")}`,
  );
  // One JSON array per line that found its link.
  for (const chunk of text.split("\n")) {
    for (const o of parseJsonArray(chunk, "getLinks")) {
      const l = parseLink(o);
      if (wanted.includes(l.name)) out.set(l.name, l);
    }
  }
  return out;
}

/** All links of a namespace with their addresses. */
export async function listLinks(exec: IpExecutor, netns: Netns): Promise<LinkInfo[]> {
  const out = await exec.query(netns, ["-json", "-d", "addr", "show"], "listLinks");
  return parseJsonArray(out, "listLinks").map(parseLink);
}

/** IPv4 and IPv6 routes of the main table. */
export async function listRoutes(exec: IpExecutor, netns: Netns): Promise<RouteInfo[]> {
  const [v4, v6] = await Promise.all([
    exec.query(netns, ["-json", "-4", "route", "show"], "listRoutes"),
    exec.query(netns, ["-json", "-6", "route", "show"], "listRoutes"),
  ]);
  return [
    ...parseJsonArray(v4, "listRoutes").map((o) => parseRoute(o, 4)),
    ...parseJsonArray(v6, "listRoutes").map((o) => parseRoute(o, 6)),
  ];
}

/** Neighbour (ARP/ND) entries. */
export async function listNeighbors(exec: IpExecutor, netns: Netns): Promise<NeighborInfo[]> {
  const out = await exec.query(netns, ["-json", "neigh", "show"], "listNeighbors");
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
