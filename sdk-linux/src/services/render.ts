/**
 * Renders one service into one nftables table for a client namespace (pure; unit-tested without a kernel).
 *
 * Why the client namespace's `output` hook is enough: a client's connection starts in its own namespace, and
 * the first packet of every new flow passes the `nat` output chain there, where it is DNATed from
 * ServiceIP:port to the chosen backend. Conntrack records the translation and rewrites every later packet of
 * the flow, replies included (their source goes back to ServiceIP:port), so no rule for replies and no rule on
 * the backend's side is needed. `nat` chains see only the first packet of a flow, which makes `numgen inc` a
 * per-new-flow round robin. A rule change never moves established flows: their mapping lives in conntrack.
 *
 * One table per service (`nsmts_svc_<name>_<hash>`) makes a service one unit: replaced in one transaction,
 * deleted on its own, never touching another service's rules.
 */
import { createHash } from "node:crypto";
import { isIPv4, isIPv6 } from "node:net";
import { Code, fail } from "@nsm-ts/base/status";
import type { NftTable } from "../nft/table.js";
import { maglevSize, maglevTable } from "./maglev.js";
import type { Locality, ServiceBackend, ServiceFrontend, ServiceView } from "./view.js";

/** Every service table's name starts with this (inside `NFT_TABLE_PREFIX`). */
export const SERVICE_TABLE_PREFIX = "nsmts_svc_";

/** DNAT before routing decisions of the `output` path are redone (the standard `dstnat` priority). */
const DSTNAT_PRIORITY = -100;

/** The table name of a service: readable part plus a hash, since service names may be 253 characters. */
export function serviceTableName(service: string): string {
  const slug = service
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, "_")
    .slice(0, 24);
  const h = createHash("sha256").update(service).digest("hex").slice(0, 8);
  return `${SERVICE_TABLE_PREFIX}${slug}_${h}`;
}

/** Healthy backends of `fe`'s port and address family, narrowed by its policy (closest: node, zone, any). */
export function selectBackends(fe: ServiceFrontend, backends: readonly ServiceBackend[], where: Locality): ServiceBackend[] {
  const v6 = isIPv6(fe.address);
  const usable = backends.filter(
    (b) =>
      b.health === "healthy" && b.protocol === fe.protocol && b.portName === fe.portName && (v6 ? isIPv6(b.address) : isIPv4(b.address)),
  );
  if (fe.policy !== "closest") return usable;
  const sameNode = usable.filter((b) => b.node !== "" && b.node === where.node);
  if (sameNode.length > 0) return sameNode;
  const sameZone = usable.filter((b) => b.zone !== "" && b.zone === where.zone);
  return sameZone.length > 0 ? sameZone : usable;
}

function gcd(a: number, b: number): number {
  return b === 0 ? a : gcd(b, a % b);
}

/** At most this many round-robin slots; larger weight sums are scaled down (each backend keeps at least one). */
const MAX_RR_SLOTS = 65536;

/**
 * Round-robin slots: backend indexes, each repeated by its weight (reduced by the common divisor), spread out
 * so that a heavy backend's turns are interleaved with the others' rather than consecutive.
 */
export function roundRobinSlots(weights: readonly number[]): number[] {
  const w = weights.map((x) => Math.max(1, Math.trunc(x)));
  if (w.every((x) => x === 1)) return w.map((_, i) => i);
  const g = w.reduce((a, b) => gcd(a, b));
  let scaled = w.map((x) => x / g);
  const sum = scaled.reduce((a, b) => a + b, 0);
  if (sum > MAX_RR_SLOTS) scaled = scaled.map((x) => Math.max(1, Math.floor((x * MAX_RR_SLOTS) / sum)));
  const turns: Array<[number, number]> = [];
  scaled.forEach((n, i) => {
    for (let k = 0; k < n; k++) turns.push([(k + 0.5) / n, i]);
  });
  turns.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  return turns.map(([, i]) => i);
}

/** An address-only frontend (port 0, protocol `any`) translates the address of every packet and keeps the port. */
const addressOnly = (fe: ServiceFrontend): boolean => fe.protocol === "any" || fe.port === 0;

/** The protocol match that lets a rule touch ports; empty for address-only frontends. */
const l4 = (fe: ServiceFrontend): string => (addressOnly(fe) ? "" : `meta l4proto ${fe.protocol} `);

function target(fe: ServiceFrontend, b: ServiceBackend): string {
  return addressOnly(fe) ? b.address : `${b.address} . ${b.port}`;
}

function dnatOne(fe: ServiceFrontend, b: ServiceBackend): string {
  const fam = isIPv6(fe.address) ? "ip6" : "ip";
  const addr = fam === "ip6" ? `[${b.address}]` : b.address;
  return addressOnly(fe) ? `dnat ${fam} to ${b.address}` : `${l4(fe)}dnat ${fam} to ${addr}:${b.port}`;
}

function mapOf(fe: ServiceFrontend, slots: readonly number[], chosen: readonly ServiceBackend[]): string {
  return slots.map((i, slot) => `${slot} : ${target(fe, chosen[i] as ServiceBackend)}`).join(", ");
}

/** A fixed seed per service, so the hash of a flow (and so its slot) survives re-rendering. */
function seedOf(service: string): string {
  return `0x${createHash("sha256").update(`seed:${service}`).digest("hex").slice(0, 8)}`;
}

/** The rule that picks a backend for one frontend among `chosen`. */
export function pickRule(view: ServiceView, fe: ServiceFrontend, chosen: readonly ServiceBackend[]): string {
  // No backend: refuse at once rather than let the client wait for a ServiceIP that answers nobody.
  if (chosen.length === 0) return fe.protocol === "tcp" && !addressOnly(fe) ? "meta l4proto tcp reject with tcp reset" : `${l4(fe)}reject`;
  if (chosen.length === 1) return dnatOne(fe, chosen[0] as ServiceBackend);
  const fam = isIPv6(fe.address) ? "ip6" : "ip";
  if (fe.policy === "consistent-hash") {
    const size = maglevSize(chosen.length);
    const table = maglevTable(
      chosen.map((b) => `${b.address}|${b.port}`),
      size,
      chosen.map((b) => b.weight),
    );
    const affinity = (view.sessionAffinitySeconds ?? 0) > 0;
    // Ports exist only with a protocol match; an address-only service hashes the addresses.
    const key = affinity
      ? `${fam} saddr`
      : addressOnly(fe)
        ? `${fam} saddr . ${fam} daddr`
        : `${fam} saddr . ${fam} daddr . meta l4proto . th sport . th dport`;
    return `${l4(fe)}dnat ${fam} to jhash ${key} mod ${size} seed ${seedOf(view.name)} map { ${mapOf(fe, table, chosen)} }`;
  }
  const slots = roundRobinSlots(chosen.map((b) => b.weight));
  return `${l4(fe)}dnat ${fam} to numgen inc mod ${slots.length} map { ${mapOf(fe, slots, chosen)} }`;
}

function validate(view: ServiceView): void {
  for (const [i, fe] of view.frontends.entries()) {
    if (!isIPv4(fe.address) && !isIPv6(fe.address))
      fail(Code.InvalidArgument, `services: ${view.name}: frontends[${i}].address ${JSON.stringify(fe.address)} is not an IP address`);
    if (!Number.isInteger(fe.port) || fe.port < 0 || fe.port > 65535 || (fe.port === 0) !== (fe.protocol === "any"))
      fail(Code.InvalidArgument, `services: ${view.name}: frontends[${i}].port ${fe.port} is not in 1..65535 (or 0 with protocol any)`);
  }
  for (const [i, b] of view.backends.entries()) {
    if (!isIPv4(b.address) && !isIPv6(b.address))
      fail(Code.InvalidArgument, `services: ${view.name}: backends[${i}].address ${JSON.stringify(b.address)} is not an IP address`);
    if (!Number.isInteger(b.port) || b.port < 0 || b.port > 65535 || (b.port === 0 && b.protocol !== "any"))
      fail(Code.InvalidArgument, `services: ${view.name}: backends[${i}].port ${b.port} is not in 1..65535 (or 0 with protocol any)`);
  }
}

/** Rendered tables per view object and locality: a refresh or a re-apply of an unchanged view renders nothing. */
const memo = new WeakMap<ServiceView, Map<string, NftTable | undefined>>();
/**
 * Pick rules by what they depend on (policy, protocol, family, backend set, seed): a frontend-only change, or a
 * backend change in another port, renders no unchanged backend set again. Bounded, least recently used out.
 */
const pickMemo = new Map<string, string>();
const PICK_MEMO_MAX = 512;

function memoPick(key: string, render: () => string): string {
  const hit = pickMemo.get(key);
  if (hit !== undefined) {
    pickMemo.delete(key);
    pickMemo.set(key, hit);
    return hit;
  }
  const rule = render();
  pickMemo.set(key, rule);
  if (pickMemo.size > PICK_MEMO_MAX) pickMemo.delete(pickMemo.keys().next().value as string);
  return rule;
}

/**
 * The table for `view` as seen from a client at `where`, or undefined when the service has no frontend (then
 * its table must not exist). Memoised per view object: views are immutable.
 */
export function renderServiceTable(view: ServiceView, where: Locality): NftTable | undefined {
  const whereKey = `${where.node}\0${where.zone}`;
  let perView = memo.get(view);
  if (perView?.has(whereKey)) return perView.get(whereKey);
  validate(view);
  const dispatch: string[] = [];
  const chains: Array<{ name: string; rules: string[] }> = [];
  const chainOf = new Map<string, string>();
  for (const fe of view.frontends) {
    const chosen = selectBackends(fe, view.backends, where);
    // Same rule text ⇔ same chain: the key is what the rule depends on.
    const key = `${fe.policy}|${fe.protocol}|${isIPv6(fe.address) ? 6 : 4}|${chosen.map((b) => `${target(fe, b)}*${b.weight}`).join(",")}`;
    const rule = memoPick(`${view.name}|${view.sessionAffinitySeconds ?? 0}|${key}`, () => pickRule(view, fe, chosen));
    let chain = chainOf.get(key);
    if (chain === undefined) {
      chain = `pick_${chains.length}`;
      chainOf.set(key, chain);
      chains.push({ name: chain, rules: [rule] });
    }
    const fam = isIPv6(fe.address) ? "ip6" : "ip";
    dispatch.push(`${fam} daddr ${fe.address} ${addressOnly(fe) ? "" : `${l4(fe)}th dport ${fe.port} `}jump ${chain}`);
  }
  const table: NftTable | undefined =
    dispatch.length === 0
      ? undefined
      : {
          family: "inet",
          name: serviceTableName(view.name),
          chains: [{ name: "frontends", hook: { type: "nat", hook: "output", priority: DSTNAT_PRIORITY }, rules: dispatch }, ...chains],
        };
  if (perView === undefined) {
    perView = new Map();
    memo.set(view, perView);
  }
  perView.set(whereKey, table);
  return table;
}
