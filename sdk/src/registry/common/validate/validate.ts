/**
 * validate (registry server): rejects malformed entries with `InvalidArgument` naming the field before any
 * element acts on them, so bad input never reaches the store and the server keeps serving: an empty name, an
 * endpoint URL that is neither empty nor `tcp://`, `unix://` or `inode://`, an invalid `google.protobuf.Timestamp`
 * (seconds outside the RFC 3339 range, nanos outside [0, 1e9)) or an expiration already in the past, an empty
 * service name, an empty key in a label map, and anything beyond the limits of `@nsm-ts/base/limits` (names,
 * URL, payload, label maps, list lengths, `MAX_REGISTRY_ENTRY_BYTES` for the whole entry, and for a Find template;
 * docs/wire-compatibility.md#limits). Place first in the server chain (and in the nsmgr's registry proxy).
 */
import { toBinary } from "@bufbuild/protobuf";
import { NetworkServiceEndpointSchema, NetworkServiceSchema } from "@nsm-ts/api/registry";
import type { CallContext } from "@nsm-ts/base/context";
import {
  checkCount,
  checkLabels as checkLabelLimits,
  checkSize,
  MAX_LIST_ITEMS,
  MAX_NAME_BYTES,
  MAX_PAYLOAD_BYTES,
  MAX_REGISTRY_ENTRY_BYTES,
  MAX_URL_BYTES,
  timestampMs,
} from "@nsm-ts/base/limits";
import { Code, fail } from "@nsm-ts/base/status";
import type { RegistryElement, RegistryEntry } from "../../core/index.js";
import { domainOf, isDnsName, isInterdomain, targetOf } from "../dnsresolve/names.js";
import { isEndpoint } from "../entry.js";

const URL_SCHEMES = ["tcp://", "unix://", "inode://"] as const;
const W = "validate";

function bad(field: string, why: string): never {
  return fail(Code.InvalidArgument, `${W}: ${field} ${why}`);
}

function checkLabels(labels: Record<string, string>, field: string): void {
  checkLabelLimits(W, field, labels, { nonEmptyKeys: true });
}

function checkNames(names: readonly string[], field: string): void {
  checkCount(W, field, names.length, MAX_LIST_ITEMS);
  for (const [i, n] of names.entries()) checkSize(W, `${field}[${i}]`, n, MAX_NAME_BYTES);
}

/**
 * An interdomain name (`name@domain`) needs a DNS name after the first `@`, and a name before it except in a Find
 * template (`@domain` asks for everything of that domain).
 */
function checkDomainName(name: string, field: string, query = false): void {
  if (!isInterdomain(name)) return;
  if (targetOf(name) === "" && !query) bad(field, `${JSON.stringify(name)} has nothing before "@"`);
  const domain = domainOf(name);
  if (!isDnsName(domain)) bad(field, `${JSON.stringify(name)}: domain ${JSON.stringify(domain)} is not a DNS name`);
}

/** Checks one entry of a Register (`full`) or Unregister (name only). */
export function validateEntry(ctx: CallContext, entry: RegistryEntry, full: boolean): void {
  if (entry.name === "") bad("name", "is empty");
  checkSize(W, "name", entry.name, MAX_NAME_BYTES);
  checkDomainName(entry.name, "name");
  if (!full) return;
  checkNames(entry.pathIds, "path_ids");
  if (isEndpoint(entry)) {
    checkSize(W, "url", entry.url, MAX_URL_BYTES);
    checkNames(entry.networkServiceNames, "network_service_names");
    checkCount(W, "network_service_labels", Object.keys(entry.networkServiceLabels).length, MAX_LIST_ITEMS);
    if (entry.initialRegistrationTime !== undefined) timestampMs(W, "initial_registration_time", entry.initialRegistrationTime);
    const expiresMs = entry.expirationTime === undefined ? undefined : timestampMs(W, "expiration_time", entry.expirationTime);
    if (entry.url !== "" && !URL_SCHEMES.some((s) => entry.url.startsWith(s) && entry.url.length > s.length)) {
      bad("url", `${JSON.stringify(entry.url)} must be tcp://host:port, unix:///path or inode://dev/ino`);
    }
    if (entry.url.startsWith("tcp://") && !/^tcp:\/\/(\[[^\]]+\]|[^:/[\]]*):\d{1,5}\/?$/.test(entry.url)) {
      bad("url", `${JSON.stringify(entry.url)} must be tcp://host:port`);
    }
    if (expiresMs !== undefined && expiresMs <= ctx.clock.now()) {
      bad("expiration_time", `${new Date(expiresMs).toISOString()} is in the past`);
    }
    entry.networkServiceNames.forEach((svc, i) => {
      if (svc === "") bad(`network_service_names[${i}]`, "is empty");
      checkDomainName(svc, `network_service_names[${i}]`);
    });
    for (const [svc, l] of Object.entries(entry.networkServiceLabels)) {
      if (svc === "") bad("network_service_labels", "has an empty key");
      checkSize(W, "network_service_labels key", svc, MAX_NAME_BYTES);
      checkLabels(l.labels, `network_service_labels[${JSON.stringify(svc)}].labels`);
    }
    const n = toBinary(NetworkServiceEndpointSchema, entry).length;
    if (n > MAX_REGISTRY_ENTRY_BYTES) bad("network_service_endpoint", `is ${n} bytes encoded, more than ${MAX_REGISTRY_ENTRY_BYTES}`);
  } else {
    checkSize(W, "payload", entry.payload, MAX_PAYLOAD_BYTES);
    checkCount(W, "matches", entry.matches.length, MAX_LIST_ITEMS);
    for (const [i, m] of entry.matches.entries()) {
      checkLabels(m.sourceSelector, `matches[${i}].source_selector`);
      if (m.metadata) checkLabelLimits(W, `matches[${i}].metadata.labels`, m.metadata.labels);
      checkCount(W, `matches[${i}].routes`, m.routes.length, MAX_LIST_ITEMS);
      for (const [j, r] of m.routes.entries()) checkLabels(r.destinationSelector, `matches[${i}].routes[${j}].destination_selector`);
    }
    const n = toBinary(NetworkServiceSchema, entry).length;
    if (n > MAX_REGISTRY_ENTRY_BYTES) bad("network_service", `is ${n} bytes encoded, more than ${MAX_REGISTRY_ENTRY_BYTES}`);
  }
}

/** Checks a Find query's template: a template matches by its fields, so none may be larger than an entry's. */
export function validateQuery(template: RegistryEntry): void {
  checkSize(W, "query.name", template.name, MAX_NAME_BYTES);
  checkDomainName(template.name, "query.name", true);
  const n = isEndpoint(template)
    ? toBinary(NetworkServiceEndpointSchema, template).length
    : toBinary(NetworkServiceSchema, template).length;
  if (n > MAX_REGISTRY_ENTRY_BYTES) bad("query", `template is ${n} bytes encoded, more than ${MAX_REGISTRY_ENTRY_BYTES}`);
}

/** Creates the server element (see the header comment). */
export function newServer<T extends RegistryEntry>(): RegistryElement<T> {
  return {
    name: "validate",
    async register(ctx, entry, next) {
      validateEntry(ctx, entry, true);
      return next.register(ctx, entry);
    },
    async *find(ctx, query, next) {
      validateQuery(query.template);
      yield* next.find(ctx, query);
    },
    async unregister(ctx, entry, next) {
      validateEntry(ctx, entry, false);
      return next.unregister(ctx, entry);
    },
  };
}
