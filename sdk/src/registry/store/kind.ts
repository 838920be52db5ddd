/**
 * What the stores need to know about each kind of entry, so memory and etcd stores are written once: the message
 * schema, the template match, and the secondary index keys that let Find narrow its candidates.
 */
import type { GenMessage } from "@bufbuild/protobuf/codegenv2";
import { NetworkServiceEndpointSchema, type NetworkServiceLabels, NetworkServiceSchema } from "@nsm-ts/api/registry";
import { Code, fail } from "@nsm-ts/base/status";
import type { RegistryEntry } from "../core/index.js";
import { matchNetworkService, matchNetworkServiceEndpoint } from "./match.js";
import type { RegistryEntryOf, RegistryKind } from "./types.js";

/** Per-kind behaviour shared by the stores (internal). */
export interface KindSpec<T extends RegistryEntry> {
  kind: RegistryKind;
  schema: GenMessage<T>;
  match(template: T, candidate: T): boolean;
  /** Secondary index keys of a stored entry (service names, `svc/k=v` labels); a key may appear twice. */
  indexKeys(entry: T): readonly string[];
  /** Index keys every match of `template` must carry; empty when the template does not narrow the search. */
  requiredKeys(template: T): string[];
  /** The expiry an entry carries itself (epoch ms), if its kind has one: what a mirror expires loaded entries at. */
  expiresAtMs(entry: T): number | undefined;
}

const nsSpec: KindSpec<RegistryEntryOf["ns"]> = {
  kind: "ns",
  schema: NetworkServiceSchema,
  match: matchNetworkService,
  // Network services are looked up by name (the primary key); payload and matches queries are rare and scan.
  indexKeys: () => NO_KEYS,
  requiredKeys: () => [],
  expiresAtMs: () => undefined,
};

const nseSpec: KindSpec<RegistryEntryOf["nse"]> = {
  kind: "nse",
  schema: NetworkServiceEndpointSchema,
  match: matchNetworkServiceEndpoint,
  indexKeys(entry) {
    const keys = entry.networkServiceNames.map(serviceKey);
    const labels = entry.networkServiceLabels;
    for (const svc in labels) {
      const l = (labels[svc] as NetworkServiceLabels).labels;
      for (const k in l) keys.push(labelKey(svc, k, l[k] as string));
    }
    return keys;
  },
  requiredKeys(template) {
    const keys = template.networkServiceNames.map(serviceKey);
    for (const [svc, l] of Object.entries(template.networkServiceLabels)) {
      for (const [k, v] of Object.entries(l.labels)) keys.push(labelKey(svc, k, v));
    }
    return keys;
  },
  expiresAtMs(entry) {
    const t = entry.expirationTime;
    if (t === undefined) return undefined;
    const ms = Number(t.seconds) * 1000 + Math.floor(t.nanos / 1_000_000);
    return Number.isFinite(ms) ? ms : undefined;
  },
};

// The leading letter keeps service keys and label keys in disjoint spaces; the separator is a control character no
// name or label has in practice, and not NUL, which statedb appends to index keys itself (its rule: none inside).
function serviceKey(svc: string): string {
  return `s\u0001${svc}`;
}

function labelKey(svc: string, k: string, v: string): string {
  return `l\u0001${svc}/${k}=${v}`;
}

const NO_KEYS: readonly string[] = [];

/** The spec of a kind (internal). */
export function kindSpec<K extends RegistryKind>(kind: K): KindSpec<RegistryEntryOf[K]> {
  return (kind === "ns" ? nsSpec : nseSpec) as unknown as KindSpec<RegistryEntryOf[K]>;
}

/** The name a put stores `entry` under; InvalidArgument when it has none (`what` names the store; internal). */
export function entryName(what: string, entry: RegistryEntry): string {
  return entry.name || fail(Code.InvalidArgument, `${what}: entry.name is empty`);
}

/** The Aborted of a compare-and-swap put that found `name` at revision `have` ("0": absent; internal). */
export function failStaleRevision(what: string, name: string, have: string, expected: string | undefined): never {
  return fail(Code.Aborted, `${what}: ${name} is at revision ${have}, not the expected ${expected}`);
}
