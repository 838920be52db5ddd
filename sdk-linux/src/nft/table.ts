/**
 * An nftables table of ours as data, and its rendering into one `nft -f -` script that replaces the whole table
 * in a single transaction: `add table` + `delete table` + the new definition, so a batch that fails anywhere
 * leaves the previous table (or no table) exactly as it was, and a reader never sees half a table.
 */
import { Code, fail } from "@nsm-ts/base/status";
import { isValidIfName } from "../names.js";

/** Every table we create starts with this, so leftovers can be found and removed without touching others'. */
export const NFT_TABLE_PREFIX = "nsmts_";

/** Address families nftables knows. */
export type NftFamily = "ip" | "ip6" | "inet" | "arp" | "bridge" | "netdev";

/** Hook of a base chain. */
export type NftHook = "prerouting" | "input" | "forward" | "output" | "postrouting" | "ingress" | "egress";

/** A base chain's attachment: `type <type> hook <hook> priority <priority>; policy <policy>;`. */
export interface NftChainHook {
  readonly type: "filter" | "nat" | "route";
  readonly hook: NftHook;
  /** A number or a standard name (`dstnat`, `filter`, `srcnat`, …, also `dstnat - 5`). */
  readonly priority: number | string;
  /** Default `accept`. */
  readonly policy?: "accept" | "drop";
  /** Required for the netdev family (`ingress`/`egress`). */
  readonly device?: string;
}

/** A chain: a base chain when `hook` is set, otherwise a jump/goto target. */
export interface NftChain {
  readonly name: string;
  readonly hook?: NftChainHook;
  /** Rule statements in nft syntax, one per entry, in order (e.g. `ip daddr 198.51.100.1 tcp dport 80 jump svc_a`). */
  readonly rules: readonly string[];
}

/** A named set (`keyType` only) or map (`keyType : valueType`). */
export interface NftSet {
  readonly name: string;
  /** E.g. `ipv4_addr`, `ipv4_addr . inet_service`, or with `typeof`: set `typeof` to true and write the expression. */
  readonly keyType: string;
  /** Present for a map: `ipv4_addr . inet_service`, `verdict`, … */
  readonly valueType?: string;
  /** Use `typeof <keyType>` instead of `type <keyType>` (for expressions such as `numgen inc mod 3`). */
  readonly typeof?: boolean;
  /** E.g. `interval`, `timeout`. */
  readonly flags?: readonly string[];
  /** Set elements, or `key : value` map elements, in nft syntax. */
  readonly elements?: readonly string[];
}

/** A whole table of ours. */
export interface NftTable {
  readonly family: NftFamily;
  /** Starts with `NFT_TABLE_PREFIX`; letters, digits and `_`. */
  readonly name: string;
  readonly sets?: readonly NftSet[];
  readonly chains: readonly NftChain[];
}

/** Identifies a table in one namespace. */
export interface NftTableRef {
  readonly family: NftFamily;
  readonly name: string;
}

const families: ReadonlySet<string> = new Set(["ip", "ip6", "inet", "arp", "bridge", "netdev"]);
const identPattern = /^[A-Za-z][A-Za-z0-9_]{0,63}$/;

/** Checks a family name from outside (e.g. parsed from `nft -j`). */
export function isNftFamily(s: string): s is NftFamily {
  return families.has(s);
}

/**
 * Checks a table, chain or set name: letters, digits and `_`, at most 64, starting with a letter. nft cannot quote
 * names, so a name that is also an nft keyword (`dst`, `ip`, `meta`) fails when applied: use compound names.
 */
export function validateNftName(what: string, name: string): string {
  if (!identPattern.test(name))
    fail(Code.InvalidArgument, `nft: ${what} ${JSON.stringify(name)} must be 1-64 of [A-Za-z0-9_], starting with a letter`);
  return name;
}

/** Checks that a table name is one of ours. */
export function validateTableName(name: string, prefix = NFT_TABLE_PREFIX): string {
  validateNftName("table name", name);
  if (!name.startsWith(prefix)) fail(Code.InvalidArgument, `nft: table name ${JSON.stringify(name)} must start with ${prefix}`);
  return name;
}

// One statement per line: a newline would let text end the statement and start another, outside the table.
function text(what: string, s: string): string {
  if (/[\n\r\0]/.test(s)) fail(Code.InvalidArgument, `nft: ${what} must be a single line: ${JSON.stringify(s.slice(0, 80))}`);
  return s;
}

function hookLine(h: NftChainHook): string {
  if (h.device !== undefined && !isValidIfName(h.device))
    fail(Code.InvalidArgument, `nft: invalid hook device ${JSON.stringify(h.device)}`);
  const device = h.device === undefined ? "" : ` device ${JSON.stringify(h.device)}`;
  const prio = typeof h.priority === "number" ? String(Math.trunc(h.priority)) : text("chain priority", h.priority);
  return `type ${h.type} hook ${h.hook}${device} priority ${prio}; policy ${h.policy ?? "accept"};`;
}

function setBlock(s: NftSet): string {
  const kind = s.valueType === undefined ? "set" : "map";
  const type = `${s.typeof ? "typeof" : "type"} ${text("set key type", s.keyType)}${s.valueType === undefined ? "" : ` : ${text("map value type", s.valueType)}`}`;
  const lines = [`\t${kind} ${validateNftName(`${kind} name`, s.name)} {`, `\t\t${type}`];
  if (s.flags && s.flags.length > 0) lines.push(`\t\tflags ${s.flags.map((f) => validateNftName("set flag", f)).join(", ")}`);
  if (s.elements && s.elements.length > 0)
    lines.push(`\t\telements = { ${s.elements.map((e) => text("set element", e)).join(",\n\t\t\t")} }`);
  lines.push("\t}");
  return lines.join("\n");
}

/** The table's `family name` as nft writes it. */
export function tableSpec(t: NftTableRef): string {
  if (!families.has(t.family)) fail(Code.InvalidArgument, `nft: unknown family ${JSON.stringify(t.family)}`);
  return `${t.family} ${validateNftName("table name", t.name)}`;
}

/**
 * The script that replaces `table` atomically. Chains are declared (empty) before any rule is added, so rules
 * may jump to chains in any order.
 */
export function renderTable(table: NftTable, prefix = NFT_TABLE_PREFIX): string {
  validateTableName(table.name, prefix);
  const spec = tableSpec(table);
  const seen = new Set<string>();
  const out = [`add table ${spec}`, `delete table ${spec}`, `table ${spec} {`];
  for (const s of table.sets ?? []) {
    if (seen.has(`s:${s.name}`)) fail(Code.InvalidArgument, `nft: set ${s.name} defined twice in ${table.name}`);
    seen.add(`s:${s.name}`);
    out.push(setBlock(s));
  }
  for (const c of table.chains) {
    validateNftName("chain name", c.name);
    if (seen.has(`c:${c.name}`)) fail(Code.InvalidArgument, `nft: chain ${c.name} defined twice in ${table.name}`);
    seen.add(`c:${c.name}`);
    out.push(c.hook === undefined ? `\tchain ${c.name} {\n\t}` : `\tchain ${c.name} {\n\t\t${hookLine(c.hook)}\n\t}`);
  }
  out.push("}");
  for (const c of table.chains) {
    if (c.rules.length === 0) continue;
    out.push(`table ${spec} {`, `\tchain ${c.name} {`);
    for (const r of c.rules) out.push(`\t\t${text(`rule in chain ${c.name}`, r)}`);
    out.push("\t}", "}");
  }
  return `${out.join("\n")}\n`;
}

/** The script that deletes `table` whether or not it exists. */
export function renderDelete(table: NftTableRef): string {
  const spec = tableSpec(table);
  return `add table ${spec}\ndelete table ${spec}\n`;
}
