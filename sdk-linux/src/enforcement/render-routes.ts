/**
 * A subnet's route table and `ip_context.policies` (PolicyRoute) → routes and `ip rule`s in the client's netns.
 * Pure, so the translation is unit-tested without a kernel; `apply.ts` compares the result with what the kernel
 * holds (by the keys below) and changes only the differences.
 *
 * Everything carries routing protocol `ENFORCE_PROTO` (routes: `proto`, rules: `protocol`), and each policy gets a
 * table of its own whose id is derived from owner and connection id (`policyTableBase`), so teardown finds what is
 * ours without any state: rules outlive the interface, routes do not.
 */
import { createHash } from "node:crypto";
import { type Cidr, formatCidr, formatIp, type Ip, parseCidr, parseIp } from "@nsm-ts/base/netaddr";
import { validateIfName } from "../names.js";

/** Routing protocol number on every route and rule nsm-ts enforcement adds (unused by common routing daemons). */
export const ENFORCE_PROTO = 78;
/** First table id of policy tables; each connection owns `POLICY_TABLES_PER_CONNECTION` ids from a hashed offset. */
export const POLICY_TABLE_MIN = 0x4e000000;
/** Policies per connection (each is one table). */
export const POLICY_TABLES_PER_CONNECTION = 64;
/** Priority of the policy rules (before the main table's 32766). */
export const POLICY_RULE_PRIORITY = 20000;

/** A route of a route table, structurally `nsmts.resources.v1.Route`. */
export interface TableRoute {
  readonly destination: string;
  readonly nextHop: string;
  readonly priority: number;
}

/** A policy route, structurally `connectioncontext.PolicyRoute`. */
export interface PolicyInput {
  readonly from: string;
  readonly proto: string;
  readonly dstPort: string;
  readonly srcPort: string;
  readonly routes: ReadonlyArray<{ readonly prefix: string; readonly nextHop: string }>;
}

/** A route to hold in the client's netns. */
export interface WantedRoute {
  readonly family: 4 | 6;
  /** `addr/len`, host bits cleared. */
  readonly dst: string;
  readonly gateway?: string;
  readonly dev: string;
  /** Explicit, so it compares with the kernel's (IPv6 routes default to 1024). */
  readonly metric: number;
  /** Undefined = main. */
  readonly table?: number;
}

/** An `ip rule` to hold. */
export interface WantedRule {
  readonly family: 4 | 6;
  /** `addr/len`, or undefined for all. */
  readonly from?: string;
  /** Protocol name as iproute2 prints it (`tcp`, `udp`, `ipv6-icmp`, …) or a number. */
  readonly ipproto?: string;
  /** `N` or `N-M`. */
  readonly dport?: string;
  readonly sport?: string;
  readonly table: number;
}

/** Routes and rules of one connection. */
export interface RoutingPlan {
  readonly routes: readonly WantedRoute[];
  readonly rules: readonly WantedRule[];
  /** Entries that could not be expressed, with the field named. */
  readonly skipped: readonly string[];
}

/** What the plan is rendered from. */
export interface RoutingInput {
  /** The connection's interface in the client's netns. */
  readonly ifName: string;
  /** The endpoint-side addresses of the connection (`dst_ip_addrs`): the default next hop per family. */
  readonly peer: readonly string[];
  /** The subnet's route table (none = empty). */
  readonly tableRoutes: readonly TableRoute[];
  /** `ip_context.policies`. */
  readonly policies: readonly PolicyInput[];
}

/** The first policy table id of a connection. */
export function policyTableBase(owner: string, connectionId: string): number {
  const h = createHash("sha256").update(`${owner}\0${connectionId}`).digest().readUInt32BE(0) >>> 12; // 20 bits
  return POLICY_TABLE_MIN + h * POLICY_TABLES_PER_CONNECTION;
}

/** True when `table` belongs to the connection whose first table is `base`. */
export function isPolicyTableOf(base: number, table: number): boolean {
  return table >= base && table < base + POLICY_TABLES_PER_CONNECTION;
}

const PROTO_NAMES: Record<string, string> = {
  "1": "icmp",
  "6": "tcp",
  "17": "udp",
  "47": "gre",
  "58": "ipv6-icmp",
  "132": "sctp",
  icmpv6: "ipv6-icmp",
};

/** A protocol as iproute2 prints it; undefined for any; throws for garbage. */
export function normalizeProto(p: string): string | undefined {
  const s = p.trim().toLowerCase();
  if (s === "" || s === "any" || s === "0") return undefined;
  if (/^\d+$/.test(s)) {
    if (Number(s) > 255) throw new Error(`proto ${JSON.stringify(p)} is above 255`);
    return PROTO_NAMES[String(Number(s))] ?? String(Number(s));
  }
  if (!/^[a-z][a-z0-9-]*$/.test(s)) throw new Error(`proto ${JSON.stringify(p)} is neither a protocol name nor a number`);
  return PROTO_NAMES[s] ?? s;
}

/** A port or range `N` / `N-M` (1..65535), normalized; undefined for empty; throws for garbage. */
export function normalizePortRange(p: string, field: string): string | undefined {
  const s = p.trim();
  if (s === "") return undefined;
  const m = /^(\d{1,5})(?:\s*-\s*(\d{1,5}))?$/.exec(s);
  const a = Number(m?.[1]);
  const b = m?.[2] === undefined ? a : Number(m[2]);
  if (!m || a < 1 || b > 65535 || a > b) throw new Error(`${field} ${JSON.stringify(p)} is not a port or range within 1..65535`);
  return a === b ? String(a) : `${a}-${b}`;
}

function cidrText(c: Cidr): string {
  return formatCidr(c);
}

/**
 * Renders the plan. Route-table routes go into the main table via `next_hop`, or via the connection's peer
 * address of the family when empty; each policy becomes table `base + i` with its routes and one rule per family
 * it covers (the family of `from`, else of its routes).
 */
export function renderRouting(owner: string, connectionId: string, input: RoutingInput): RoutingPlan {
  const dev = validateIfName(input.ifName, "enforcement interface name");
  const skipped: string[] = [];
  const peers = input.peer.map((a) => parseIp(a.split("/")[0] ?? "", { zone: true })).filter((ip): ip is Ip => ip !== undefined);
  const peerOf = (fam: 4 | 6): string | undefined => {
    const p = peers.find((ip) => ip.family === fam);
    return p === undefined ? undefined : formatIp(p);
  };
  const routes = new Map<string, WantedRoute>();
  const route = (where: string, prefix: string, nextHop: string, metric: number, table?: number): 4 | 6 | undefined => {
    const c = parseCidr(prefix, { bare: true });
    if (c === undefined) {
      skipped.push(`${where}: ${JSON.stringify(prefix)} is not a prefix`);
      return undefined;
    }
    let gateway: string | undefined;
    if (nextHop !== "") {
      const g = parseIp(nextHop);
      if (g === undefined || g.family !== c.family) {
        skipped.push(`${where}: next hop ${JSON.stringify(nextHop)} is not an address of the prefix's family`);
        return undefined;
      }
      gateway = formatIp(g);
    } else {
      gateway = peerOf(c.family);
    }
    const dst = cidrText(c);
    // A route to the peer itself is on-link.
    if (gateway !== undefined && `${gateway}/${c.family === 4 ? 32 : 128}` === dst) gateway = undefined;
    const r: WantedRoute = {
      family: c.family,
      dst,
      dev,
      metric: metric > 0 ? metric : c.family === 6 ? 1024 : 0,
      ...(gateway === undefined ? {} : { gateway }),
      ...(table === undefined ? {} : { table }),
    };
    routes.set(routeKey(r), r);
    return c.family;
  };
  input.tableRoutes.forEach((r, i) => {
    route(`route table routes[${i}]`, r.destination, r.nextHop, r.priority);
  });
  const base = policyTableBase(owner, connectionId);
  const rules: WantedRule[] = [];
  input.policies.forEach((p, i) => {
    const where = `ip_context.policies[${i}]`;
    if (i >= POLICY_TABLES_PER_CONNECTION) {
      skipped.push(`${where}: more than ${POLICY_TABLES_PER_CONNECTION} policies`);
      return;
    }
    const table = base + i;
    let from: Cidr | undefined;
    let ipproto: string | undefined;
    let dport: string | undefined;
    let sport: string | undefined;
    try {
      if (p.from !== "") {
        from = parseCidr(p.from, { bare: true });
        if (from === undefined) throw new Error(`from ${JSON.stringify(p.from)} is not a prefix`);
      }
      ipproto = normalizeProto(p.proto);
      dport = normalizePortRange(p.dstPort, "dst_port");
      sport = normalizePortRange(p.srcPort, "src_port");
      if ((dport !== undefined || sport !== undefined) && !["tcp", "udp", "sctp"].includes(ipproto ?? "")) {
        throw new Error("dst_port/src_port need proto tcp, udp or sctp");
      }
    } catch (err) {
      skipped.push(`${where}: ${(err as Error).message}`);
      return;
    }
    const fams = new Set<4 | 6>();
    p.routes.forEach((r, j) => {
      const fam = route(`${where}.routes[${j}]`, r.prefix, r.nextHop, 0, table);
      if (fam !== undefined) fams.add(fam);
    });
    if (from !== undefined) {
      fams.clear();
      fams.add(from.family);
    }
    for (const family of fams) {
      rules.push({
        family,
        table,
        ...(from === undefined ? {} : { from: cidrText(from) }),
        ...(ipproto === undefined ? {} : { ipproto }),
        ...(dport === undefined ? {} : { dport }),
        ...(sport === undefined ? {} : { sport }),
      });
    }
  });
  return { routes: [...routes.values()], rules, skipped };
}

/** Identity of a route for diffs against the kernel's listing. */
export function routeKey(r: Pick<WantedRoute, "dst" | "gateway" | "metric" | "table">): string {
  return `${r.table ?? "main"}|${r.dst}|${r.gateway ?? ""}|${r.metric}`;
}

/** Identity of a rule for diffs against the kernel's listing. */
export function ruleKey(r: WantedRule): string {
  return `${r.family}|${r.table}|${r.from ?? "all"}|${r.ipproto ?? ""}|${r.dport ?? ""}|${r.sport ?? ""}`;
}

/** `ip route replace` arguments (without `ip`) for a wanted route. */
export function routeArgs(r: WantedRoute): string[] {
  // No family flag: the destination tells it, and `ip -batch` lines cannot carry one.
  return [
    "route",
    "replace",
    r.dst,
    ...(r.gateway === undefined ? [] : ["via", r.gateway]),
    "dev",
    r.dev,
    "metric",
    String(r.metric),
    ...(r.table === undefined ? [] : ["table", String(r.table)]),
    "proto",
    String(ENFORCE_PROTO),
    ...(r.gateway === undefined ? [] : ["onlink"]),
  ];
}

/** `ip rule add|del` arguments (without `ip`) for a rule. */
export function ruleArgs(op: "add" | "del", r: WantedRule): string[] {
  return [
    r.family === 6 ? "-6" : "-4",
    "rule",
    op,
    "pref",
    String(POLICY_RULE_PRIORITY),
    ...(r.from === undefined ? [] : ["from", r.from]),
    ...(r.ipproto === undefined ? [] : ["ipproto", r.ipproto]),
    ...(r.dport === undefined ? [] : ["dport", r.dport]),
    ...(r.sport === undefined ? [] : ["sport", r.sport]),
    "table",
    String(r.table),
    "protocol",
    String(ENFORCE_PROTO),
  ];
}
