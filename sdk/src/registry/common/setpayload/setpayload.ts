/**
 * setpayload (registry server): a network service registered without a payload gets `IP`, the upstream default
 * (docs/wire-compatibility.md#payloads-and-labels), so clients matching on payload see what the data plane will
 * carry. Endpoints pass through.
 */
import { Payload } from "@nsm-ts/api/constants";
import type { RegistryElement, RegistryEntry } from "../../core/index.js";
import { cloneEntry, isEndpoint } from "../entry.js";

/** Creates the server element. */
export function newServer<T extends RegistryEntry>(): RegistryElement<T> {
  return {
    name: "setpayload",
    async register(ctx, entry, next) {
      if (isEndpoint(entry) || entry.payload !== "") return next.register(ctx, entry);
      const e = cloneEntry(entry);
      if (!isEndpoint(e)) e.payload = Payload.IP;
      return next.register(ctx, e);
    },
    find: (ctx, query, next) => next.find(ctx, query),
    unregister: (ctx, entry, next) => next.unregister(ctx, entry),
  };
}
