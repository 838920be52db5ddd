/**
 * What the ConnectionContext asks for on one side of a connection, as kernel objects: addresses, routes and
 * neighbours of one interface. Pure functions, so the rules (`src_routes` go to the client side
 * via the dst address, `dst_routes` to the endpoint side via the src address) are unit-tested without a kernel.
 */

import { createHash } from "node:crypto";
import { isIP } from "node:net";
import type { ConnectionContext } from "@nsm-ts/api/networkservice";
import { formatMac } from "@nsm-ts/base/netaddr";
import type { NeighborSpec, RouteSpec } from "../../ops/specs.js";
import { validateMac } from "../../validate.js";

/** Which side of the connection an interface is on: the client (NSC) or the endpoint (NSE). */
export type Side = "client" | "endpoint";

/** Kernel configuration of one interface derived from the ConnectionContext. */
export interface LegConfig {
  /** Addresses `addr/len`. */
  readonly addresses: readonly string[];
  /** Routes out of the interface (`dev` filled in). */
  readonly routes: readonly RouteSpec[];
  /** Permanent neighbour entries on the interface. */
  readonly neighbors: readonly NeighborSpec[];
  /** Hardware address the context asks for (`ethernet_context.src_mac` on the client side, `dst_mac` on the endpoint's); absent = the kernel's. */
  readonly mac?: string;
}

function addrOf(cidr: string): string {
  const i = cidr.indexOf("/");
  return i < 0 ? cidr : cidr.slice(0, i);
}

function toBig(addr: string): { fam: 4 | 6; n: bigint } | undefined {
  const fam = isIP(addr);
  if (fam === 4) return { fam, n: addr.split(".").reduce((a, p) => (a << 8n) | BigInt(Number(p)), 0n) };
  if (fam !== 6) return undefined;
  let a = addr;
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(a);
  if (v4?.[1]) {
    const b = toBig(v4[1]);
    const n = b?.n ?? 0n;
    a = `${a.slice(0, -v4[1].length)}${(n >> 16n).toString(16)}:${(n & 0xffffn).toString(16)}`;
  }
  const [head = "", tail] = a.split("::");
  const h = head === "" ? [] : head.split(":");
  const t = tail === undefined || tail === "" ? [] : tail.split(":");
  const groups = tail === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill("0"), ...t];
  return { fam: 6, n: groups.reduce((acc, g) => (acc << 16n) | BigInt(Number.parseInt(g || "0", 16)), 0n) };
}

function fromBig(fam: 4 | 6, n: bigint): string {
  if (fam === 4) return [24n, 16n, 8n, 0n].map((s) => String((n >> s) & 0xffn)).join(".");
  const g: string[] = [];
  for (let s = 112n; s >= 0n; s -= 16n) g.push(((n >> s) & 0xffffn).toString(16));
  // Compress the longest zero run for readability (iproute2 accepts either form).
  let best = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (g[i] !== "0") {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === "0") j++;
    if (j - i > bestLen && j - i > 1) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  if (best < 0) return g.join(":");
  return `${g.slice(0, best).join(":")}::${g.slice(best + bestLen).join(":")}`;
}

/**
 * Normalises a route prefix to `network/len` (a bare address becomes a host prefix), because the kernel
 * rejects `10.0.0.1/24`-style prefixes with host bits set. Returns undefined for garbage.
 */
export function normalizePrefix(prefix: string): string | undefined {
  const [a = "", l] = prefix.split("/");
  const b = toBig(a);
  if (!b) return undefined;
  const max = b.fam === 4 ? 32 : 128;
  const len = l === undefined ? max : Number(l);
  if (!Number.isInteger(len) || len < 0 || len > max || (l !== undefined && !/^\d+$/.test(l))) return undefined;
  const mask = len === 0 ? 0n : ((1n << BigInt(len)) - 1n) << BigInt(max - len);
  return `${fromBig(b.fam, b.n & mask)}/${len}`;
}

/** True when `cidr` (`addr/len`) contains the address `ip`. */
export function covers(cidr: string, ip: string): boolean {
  const [a = "", l] = cidr.split("/");
  const x = toBig(a);
  const y = toBig(ip);
  if (!x || !y || x.fam !== y.fam) return false;
  const max = x.fam === 4 ? 32 : 128;
  const len = l === undefined ? max : Number(l);
  const shift = BigInt(max - len);
  return x.n >> shift === y.n >> shift;
}

function familyOf(addr: string): 4 | 6 | undefined {
  const f = isIP(addrOf(addr));
  return f === 4 || f === 6 ? f : undefined;
}

/**
 * The configuration of the `side` interface named `dev`. Own addresses are `src_ip_addrs` on the client side and
 * `dst_ip_addrs` on the endpoint side. The peer's addresses get host routes when no own prefix covers them
 * (point-to-point /32 pairs); each route goes via its `nextHop`, or via the peer address of its family, and is
 * a plain device route when it is the peer itself. Neighbours go to the client side only. The interface's MAC is
 * `ethernet_context.src_mac` (client) or `dst_mac` (endpoint) when set, as upstream's kernel forwarder does.
 */
export function legConfig(cc: ConnectionContext | undefined, side: Side, dev: string): LegConfig {
  const ip = cc?.ipContext;
  const own = (side === "client" ? ip?.srcIpAddrs : ip?.dstIpAddrs) ?? [];
  const peer = (side === "client" ? ip?.dstIpAddrs : ip?.srcIpAddrs) ?? [];
  const wanted = (side === "client" ? ip?.srcRoutes : ip?.dstRoutes) ?? [];
  const addresses = own.map((a) => (a.includes("/") ? a : `${a}/${familyOf(a) === 6 ? 128 : 32}`));
  const routes = new Map<string, RouteSpec>();
  for (const p of peer) {
    const pa = addrOf(p);
    const fam = familyOf(pa);
    if (fam === undefined || addresses.some((a) => covers(a, pa))) continue;
    routes.set(`${pa}/${fam === 4 ? 32 : 128}`, { dst: `${pa}/${fam === 4 ? 32 : 128}`, dev });
  }
  for (const r of wanted) {
    const dst = normalizePrefix(r.prefix);
    if (dst === undefined) continue;
    const fam = familyOf(dst);
    const gw = r.nextHop !== "" ? r.nextHop : peer.map(addrOf).find((p) => familyOf(p) === fam);
    const viaPeerItself = gw === undefined || dst === `${gw}/${fam === 4 ? 32 : 128}`;
    routes.set(dst, viaPeerItself || familyOf(gw) !== fam ? { dst, dev } : { dst, gateway: gw, dev, onlink: true });
  }
  const neighbors: NeighborSpec[] =
    side === "client"
      ? (ip?.ipNeighbors ?? [])
          .filter((n) => n.ip !== "" && n.hardwareAddress !== "")
          .map((n) => ({ address: n.ip, mac: n.hardwareAddress, dev }))
      : [];
  const macField = side === "client" ? "src_mac" : "dst_mac";
  const mac = side === "client" ? cc?.ethernetContext?.srcMac : cc?.ethernetContext?.dstMac;
  return {
    addresses,
    routes: [...routes.values()],
    neighbors,
    ...(mac ? { mac: validateMac(mac, `connection.context.ethernet_context.${macField}`) } : {}),
  };
}

/**
 * The MAC a new interface of `side` of connection `connectionId` gets when the context asks for none: derived from
 * the two, locally administered and unicast. An interface made again for the same connection (a restarted endpoint
 * that names it anew, a heal through another forwarder) keeps its address, so the peer's neighbour cache, which
 * may hold the old one as REACHABLE for half a minute or more, stays right and traffic resumes at once.
 */
export function stableMac(connectionId: string, side: Side): string {
  const h = createHash("sha256").update(`${side}\0${connectionId}`).digest();
  h[0] = ((h[0] ?? 0) & 0xfc) | 0x02;
  return formatMac(BigInt(h.readUIntBE(0, 6)));
}

/** A stable key of a route for diffs. */
export function routeKey(r: RouteSpec): string {
  return `${r.dst}|${r.gateway ?? ""}|${r.dev ?? ""}`;
}

/** A stable key of a neighbour entry for diffs. */
export function neighborKey(n: NeighborSpec): string {
  return `${n.address}|${n.mac ?? ""}|${n.dev}`;
}
