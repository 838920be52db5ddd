/**
 * validate (registry server): rejects malformed entries with `InvalidArgument` naming the field before any
 * element acts on them, so bad input never reaches the store and the server keeps serving: an empty name, an
 * endpoint URL that is neither empty nor `tcp://`, `unix://` or `inode://`, an expiration already in the past, an
 * empty service name, or an empty key in a label map. Place first in the server chain.
 */
import { timestampDate } from "@bufbuild/protobuf/wkt";
import type { CallContext } from "@nsm-ts/base/context";
import { Code, fail } from "@nsm-ts/base/status";
import type { RegistryElement, RegistryEntry } from "../../core/index.js";
import { isEndpoint } from "../entry.js";

const URL_SCHEMES = ["tcp://", "unix://", "inode://"] as const;

function bad(field: string, why: string): never {
  return fail(Code.InvalidArgument, `validate: ${field} ${why}`);
}

function checkLabels(labels: Record<string, string>, field: string): void {
  for (const k of Object.keys(labels)) if (k === "") bad(field, "has an empty key");
}

/** Checks one entry of a Register (`full`) or Unregister (name only). */
export function validateEntry(ctx: CallContext, entry: RegistryEntry, full: boolean): void {
  if (entry.name === "") bad("name", "is empty");
  if (!full) return;
  if (isEndpoint(entry)) {
    if (entry.url !== "" && !URL_SCHEMES.some((s) => entry.url.startsWith(s) && entry.url.length > s.length)) {
      bad("url", `${JSON.stringify(entry.url)} must be tcp://host:port, unix:///path or inode://dev/ino`);
    }
    if (entry.url.startsWith("tcp://") && !/^tcp:\/\/(\[[^\]]+\]|[^:/[\]]*):\d{1,5}\/?$/.test(entry.url)) {
      bad("url", `${JSON.stringify(entry.url)} must be tcp://host:port`);
    }
    if (entry.expirationTime !== undefined && timestampDate(entry.expirationTime).getTime() <= ctx.clock.now()) {
      bad("expiration_time", `${timestampDate(entry.expirationTime).toISOString()} is in the past`);
    }
    entry.networkServiceNames.forEach((svc, i) => {
      if (svc === "") bad(`network_service_names[${i}]`, "is empty");
    });
    for (const [svc, l] of Object.entries(entry.networkServiceLabels)) {
      if (svc === "") bad("network_service_labels", "has an empty key");
      checkLabels(l.labels, `network_service_labels[${JSON.stringify(svc)}].labels`);
    }
  } else {
    for (const [i, m] of entry.matches.entries()) {
      checkLabels(m.sourceSelector, `matches[${i}].source_selector`);
      for (const [j, r] of m.routes.entries()) checkLabels(r.destinationSelector, `matches[${i}].routes[${j}].destination_selector`);
    }
  }
}

/** Creates the server element (see the header comment). */
export function newServer<T extends RegistryEntry>(): RegistryElement<T> {
  return {
    name: "validate",
    async register(ctx, entry, next) {
      validateEntry(ctx, entry, true);
      return next.register(ctx, entry);
    },
    find: (ctx, query, next) => next.find(ctx, query),
    async unregister(ctx, entry, next) {
      validateEntry(ctx, entry, false);
      return next.unregister(ctx, entry);
    },
  };
}
