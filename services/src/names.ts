/**
 * Sources and their priorities, balancing-policy names, and the input checks every write shares: each failure is
 * `InvalidArgument` naming the field, so API callers and sources get the same answers.
 */
import { create } from "@bufbuild/protobuf";
import { BackendHealth, BalancingPolicy, Protocol, type Service, ServiceSchema } from "@nsm-ts/api/services";
import { requireIp } from "@nsm-ts/base/netaddr";
import { Code, fail } from "@nsm-ts/base/status";

/** The sources a service or backend row can come from, highest priority first. */
export const SOURCES = ["api", "registry", "remote"] as const;
/** A source name. */
export type SourceName = (typeof SOURCES)[number];

/** Priority of each source: when several describe the same service or instance, the higher wins field by field. */
export const SOURCE_PRIORITY: Readonly<Record<SourceName, number>> = { api: 300, registry: 200, remote: 100 };

/** Priority of `source` (0 for an unknown one, which validation never lets in). */
export function priorityOf(source: string): number {
  return (SOURCE_PRIORITY as Record<string, number>)[source] ?? 0;
}

/** The operator's names of the balancing policies (CLI, config, logs). */
export const POLICY_NAMES: Readonly<Record<Exclude<BalancingPolicy, BalancingPolicy.UNSPECIFIED>, string>> = {
  [BalancingPolicy.ROUND_ROBIN]: "round-robin",
  [BalancingPolicy.CLOSEST]: "closest",
  [BalancingPolicy.CONSISTENT_HASH]: "consistent-hash",
};

/** `round-robin`, `closest` or `consistent-hash` for a policy; `unspecified` for 0. */
export function policyName(p: BalancingPolicy): string {
  return (POLICY_NAMES as Record<number, string>)[p] ?? "unspecified";
}

/** The policy a name (`round-robin`, …) stands for, or undefined. */
export function parsePolicy(name: string): BalancingPolicy | undefined {
  for (const [k, v] of Object.entries(POLICY_NAMES)) if (v === name) return Number(k) as BalancingPolicy;
  return undefined;
}

/** `tcp`, `udp` or `sctp`. */
export function protocolName(p: Protocol): string {
  return p === Protocol.UDP ? "udp" : p === Protocol.SCTP ? "sctp" : "tcp";
}

/** A backend row's health as the operator reads it (`healthy`, `unhealthy`, `draining`). */
export function healthName(h: BackendHealth): string {
  return h === BackendHealth.UNHEALTHY ? "unhealthy" : h === BackendHealth.DRAINING ? "draining" : "healthy";
}

/** Builds a Service message (sources use it). */
export const serviceOf = (init: Partial<Omit<Service, "$typeName">>): Service => create(ServiceSchema, init);

const NAME = /^[A-Za-z0-9]([A-Za-z0-9._-]{0,251}[A-Za-z0-9])?$/;

/** Fails with InvalidArgument naming `field` unless `v` is a DNS-like name. */
export function requireName(v: string, field: string): string {
  if (v === "") fail(Code.InvalidArgument, `services: ${field}: required`);
  if (!NAME.test(v)) {
    fail(Code.InvalidArgument, `services: ${field}: ${JSON.stringify(v)} is not a name (letters, digits, '.', '_', '-'; at most 253)`);
  }
  return v;
}

/** The source of a write: empty means "api"; anything else must be a known source. */
export function requireSource(v: string, field = "source"): SourceName {
  if (v === "") return "api";
  if (!(SOURCES as readonly string[]).includes(v))
    fail(Code.InvalidArgument, `services: ${field}: unknown source ${JSON.stringify(v)} (one of ${SOURCES.join(", ")})`);
  return v as SourceName;
}

/** Fails unless `p` is 1..65535. */
export function requirePort(p: number, field: string): number {
  if (!Number.isInteger(p) || p < 1 || p > 65535) fail(Code.InvalidArgument, `services: ${field}: ${p} is not a port (1..65535)`);
  return p;
}

/** Fails unless `p` is a known policy (not UNSPECIFIED). */
export function requirePolicy(p: BalancingPolicy, field = "policy"): BalancingPolicy {
  if (!(p in POLICY_NAMES))
    fail(Code.InvalidArgument, `services: ${field}: ${p} is not a balancing policy (round-robin, closest, consistent-hash)`);
  return p;
}

/** Fails unless `p` is a known protocol. */
export function requireProtocol(p: Protocol, field: string): Protocol {
  if (![Protocol.UNSPECIFIED, Protocol.TCP, Protocol.UDP, Protocol.SCTP].includes(p))
    fail(Code.InvalidArgument, `services: ${field}: ${p} is not a protocol`);
  return p === Protocol.UNSPECIFIED ? Protocol.TCP : p;
}

/** Fails unless `v` is an IPv4 or IPv6 address; returns it unchanged. */
export function requireAddress(v: string, field: string): string {
  if (v === "") fail(Code.InvalidArgument, `services: ${field}: required`);
  requireIp(v, `services: ${field}`);
  return v;
}

/** Fails unless every label key is non-empty and keys and values are at most 256 characters. */
export function requireLabels(labels: Readonly<Record<string, string>>, field: string): void {
  for (const [k, v] of Object.entries(labels)) {
    if (k === "" || k.length > 256)
      fail(Code.InvalidArgument, `services: ${field}: label key ${JSON.stringify(k)} must be 1..256 characters`);
    if (v.length > 256) fail(Code.InvalidArgument, `services: ${field}[${k}]: value longer than 256 characters`);
  }
}
