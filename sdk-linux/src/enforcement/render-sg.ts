/**
 * Security groups → one nftables table per connection, as a `nft -f` script. Pure, so the translation
 * (OpenStack semantics: a port's groups are a union of allow rules; a direction without any rule drops
 * everything but established and related traffic) is unit-tested without a kernel.
 *
 * The table (applied by the nft layer, `../nft`) hooks prerouting (ingress: packets arriving on the interface) and postrouting (egress: packets
 * leaving through it) in the client's netns, so forwarded and local traffic are treated alike, and only the
 * connection's interface is matched: other interfaces of the pod are untouched.
 */
import { createHash } from "node:crypto";
import { type Cidr, formatCidr, parseCidr } from "@nsm-ts/base/netaddr";
import { validateIfName } from "../names.js";
import { NFT_TABLE_PREFIX, type NftTable, type NftTableRef } from "../nft/table.js";

/** A security group rule, structurally the `nsmts.resources.v1.SecurityGroupRule` fields used here. */
export interface SgRule {
  readonly id?: string;
  /** "ingress" or "egress". */
  readonly direction: string;
  /** "IPv4", "IPv6", or empty for both. */
  readonly etherType: string;
  /** "tcp", "udp", "icmp", "icmpv6", a protocol number, or empty (any). */
  readonly protocol: string;
  /** tcp/udp: the destination port range (0 = any); icmp: type (min) and code (max). */
  readonly portRangeMin: number;
  readonly portRangeMax: number;
  readonly remoteIpPrefix: string;
  readonly remoteGroupId: string;
}

/** A security group with its rules. */
export interface SgGroup {
  readonly id: string;
  readonly rules: readonly SgRule[];
}

/** What is enforced on one connection's interface. */
export interface SgInput {
  /** Interface the rules apply to (in the client's netns). */
  readonly ifName: string;
  /** The port's groups, in the port's order; missing ones are left out (the caller logs them). */
  readonly groups: readonly SgGroup[];
  /** Addresses of the ports in each group a rule names as `remote_group_id` (plain addresses or prefixes). */
  readonly members: ReadonlyMap<string, readonly string[]>;
}

/** Prefix of every table nsm-ts creates for security groups (family `inet`); under the nft layer's `nsmts_`. */
export const SG_TABLE_PREFIX = `${NFT_TABLE_PREFIX}sg_`;

/** The table name of a connection: a hash of owner and connection id, so teardown without state finds it. */
export function sgTableName(owner: string, connectionId: string): string {
  return SG_TABLE_PREFIX + createHash("sha256").update(`${owner}\0${connectionId}`).digest("hex").slice(0, 20);
}

const PROTOCOLS: Record<string, number> = { tcp: 6, udp: 17, icmp: 1, icmpv6: 58, "ipv6-icmp": 58, sctp: 132 };

type Family = 4 | 6;

function families(etherType: string): Family[] {
  const t = etherType.toLowerCase();
  if (t === "ipv4") return [4];
  if (t === "ipv6") return [6];
  return [4, 6];
}

/** The protocol number of a rule, or undefined for any; throws for garbage so the caller can report the rule. */
function protocolNumber(p: string): number | undefined {
  const s = p.trim().toLowerCase();
  if (s === "" || s === "any") return undefined;
  const named = PROTOCOLS[s];
  if (named !== undefined) return named;
  if (/^\d{1,3}$/.test(s) && Number(s) <= 255) return Number(s);
  throw new Error(`protocol ${JSON.stringify(p)} is neither tcp, udp, icmp, icmpv6 nor a number 0..255`);
}

function addrSet(fam: Family, cidrs: readonly Cidr[]): string {
  const items = cidrs
    .filter((c) => c.family === fam)
    .map((c) => (c.len === (fam === 4 ? 32 : 128) ? formatCidr(c).split("/")[0] : formatCidr(c)));
  const uniq = [...new Set(items)].sort();
  return uniq.length === 1 ? (uniq[0] as string) : `{ ${uniq.join(", ")} }`;
}

/**
 * The nft set of a remote group's members in one family (undefined: none), memoized per members array: the
 * enforcer hands every connection of a pass the same array, so a group of a thousand ports is parsed, sorted
 * and joined once per pass rather than once per connection.
 */
const memberSets = new WeakMap<readonly string[], Map<Family, string | undefined>>();
function memberSet(members: readonly string[], fam: Family): string | undefined {
  let byFam = memberSets.get(members);
  if (byFam === undefined) {
    byFam = new Map();
    memberSets.set(members, byFam);
  }
  if (byFam.has(fam)) return byFam.get(fam);
  const cidrs = members.map((a) => parseCidr(a, { bare: true })).filter((c): c is Cidr => c !== undefined && c.family === fam);
  const set = cidrs.length === 0 ? undefined : addrSet(fam, cidrs);
  byFam.set(fam, set);
  return set;
}

const NO_MEMBERS: readonly string[] = [];

/** The match of one rule for one family, or undefined when the rule cannot match anything in that family. */
function ruleMatch(r: SgRule, fam: Family, members: ReadonlyMap<string, readonly string[]>): string | undefined {
  const dir = r.direction.toLowerCase() === "egress" ? "daddr" : "saddr";
  const parts: string[] = [`meta nfproto ${fam === 4 ? "ipv4" : "ipv6"}`];
  const l3 = fam === 4 ? "ip" : "ip6";
  if (r.remoteIpPrefix !== "") {
    const c = parseCidr(r.remoteIpPrefix, { bare: true });
    if (c === undefined) throw new Error(`remote_ip_prefix ${JSON.stringify(r.remoteIpPrefix)} is not a prefix`);
    if (c.family !== fam) return undefined;
    if (c.len > 0) parts.push(`${l3} ${dir} ${addrSet(fam, [c])}`);
  }
  if (r.remoteGroupId !== "") {
    const set = memberSet(members.get(r.remoteGroupId) ?? NO_MEMBERS, fam);
    if (set === undefined) return undefined; // an empty group admits nobody
    parts.push(`${l3} ${dir} ${set}`);
  }
  let proto = protocolNumber(r.protocol);
  if (proto === 1 && fam === 6) proto = 58; // "icmp" in an IPv6 rule means ICMPv6, as OpenStack reads it
  if (proto === 58 && fam === 4) return undefined;
  if (proto === undefined) return parts.join(" ");
  const min = r.portRangeMin;
  const max = r.portRangeMax === 0 ? min : r.portRangeMax;
  if (proto === 6 || proto === 17 || proto === 132) {
    const l4 = proto === 6 ? "tcp" : proto === 17 ? "udp" : "sctp";
    if (min < 0 || max > 65535 || min > max) throw new Error(`port range ${r.portRangeMin}-${r.portRangeMax} is not within 0..65535`);
    if (min === 0 && (max === 0 || max === 65535)) parts.push(`meta l4proto ${l4}`);
    else parts.push(`${l4} dport ${min === max ? min : `${min}-${max}`}`);
  } else if (proto === 1 || proto === 58) {
    const l4 = proto === 1 ? "icmp" : "icmpv6";
    parts.push(`meta l4proto ${l4 === "icmp" ? "icmp" : "ipv6-icmp"}`);
    // OpenStack: port_range_min is the ICMP type, port_range_max the code; 0/0 means any.
    if (r.portRangeMin > 255 || r.portRangeMax > 255) throw new Error(`icmp type/code ${r.portRangeMin}/${r.portRangeMax} is above 255`);
    if (r.portRangeMin !== 0 || r.portRangeMax !== 0) {
      parts.push(`${l4} type ${r.portRangeMin}`);
      if (r.portRangeMax !== 0) parts.push(`${l4} code ${r.portRangeMax}`);
    }
  } else {
    parts.push(`meta l4proto ${proto}`);
  }
  return parts.join(" ");
}

/** The rendered table, and what could not be expressed. */
export interface SgRenderResult {
  /** The table to apply with the nft layer (`NftExecutor.apply` replaces it atomically). */
  readonly table: NftTable;
  /** Number of rules rendered from group rules (for logs and tests). */
  readonly ruleCount: number;
  /** Rules left out because they cannot be expressed, each naming the group and rule. */
  readonly skipped: readonly string[];
}

/** The table reference of a connection, for deletion without state. */
export function sgTableRef(owner: string, connectionId: string): NftTableRef {
  return { family: "inet", name: sgTableName(owner, connectionId) };
}

/** Renders the table of one connection (named by `sgTableName`). */
export function renderSecurityGroups(owner: string, connectionId: string, input: SgInput): SgRenderResult {
  const ingress: string[] = [];
  const egress: string[] = [];
  const skipped: string[] = [];
  for (const g of input.groups) {
    g.rules.forEach((r, i) => {
      const list = r.direction.toLowerCase() === "egress" ? egress : r.direction.toLowerCase() === "ingress" ? ingress : undefined;
      const where = `security group "${g.id}" rules[${i}]`;
      if (list === undefined) {
        skipped.push(`${where}: direction ${JSON.stringify(r.direction)} is neither ingress nor egress`);
        return;
      }
      try {
        for (const fam of families(r.etherType)) {
          const m = ruleMatch(r, fam, input.members);
          if (m !== undefined) list.push(`${m} accept`);
        }
      } catch (err) {
        skipped.push(`${where}: ${(err as Error).message}`);
      }
    });
  }
  const ifq = JSON.stringify(validateIfName(input.ifName, "enforcement interface name"));
  const body = (rules: string[], nd: string): string[] => [
    "ct state established,related accept",
    "ct state invalid drop",
    // Without neighbour discovery IPv6 does not work at all; OpenStack allows it on every port too.
    `icmpv6 type { ${nd} } accept`,
    ...new Set(rules),
    "drop",
  ];
  const inRules = body(ingress, "nd-neighbor-solicit, nd-neighbor-advert, nd-router-advert, nd-redirect");
  const outRules = body(egress, "nd-neighbor-solicit, nd-neighbor-advert, nd-router-solicit");
  const table: NftTable = {
    family: "inet",
    name: sgTableName(owner, connectionId),
    chains: [
      { name: "sg_in_hook", hook: { type: "filter", hook: "prerouting", priority: "filter" }, rules: [`iifname ${ifq} jump sg_ingress`] },
      { name: "sg_out_hook", hook: { type: "filter", hook: "postrouting", priority: "filter" }, rules: [`oifname ${ifq} jump sg_egress`] },
      { name: "sg_ingress", rules: inRules },
      { name: "sg_egress", rules: outRules },
    ],
  };
  return { table, ruleCount: inRules.length + outRules.length - 8, skipped };
}
