/**
 * setregistrationtime (registry server): an endpoint's `initial_registration_time` is the time of its first
 * registration and stays the same across refreshes, even when a refresh does not send it back, so consumers can
 * tell a long-lived endpoint from one that re-registered. Network services pass through. Place before the store.
 */
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import type { NetworkServiceEndpoint } from "@nsm-ts/api/registry";
import type { RegistryElement, RegistryEntry } from "../../core/index.js";
import { cloneEntry, isEndpoint } from "../entry.js";

/** Options of `setregistrationtime.newServer`. */
export interface SetRegistrationTimeOptions {
  /**
   * The stored endpoint of a name, to keep its time across refreshes and replicas; default: a map this element
   * keeps from its own calls.
   */
  lookup?: (name: string) => Promise<RegistryEntry | undefined>;
}

/** Creates the server element (see the header comment). */
export function newServer<T extends RegistryEntry>(opts: SetRegistrationTimeOptions = {}): RegistryElement<T> {
  const local = new Map<string, NetworkServiceEndpoint["initialRegistrationTime"]>();
  return {
    name: "setregistrationtime",
    async register(ctx, entry, next) {
      if (!isEndpoint(entry)) return next.register(ctx, entry);
      const e = cloneEntry(entry);
      if (e.initialRegistrationTime === undefined) {
        const prev = opts.lookup ? await opts.lookup(e.name) : undefined;
        const kept = prev !== undefined && isEndpoint(prev) ? prev.initialRegistrationTime : local.get(e.name);
        e.initialRegistrationTime = kept ?? timestampFromMs(ctx.clock.now());
      }
      const res = await next.register(ctx, e as T);
      if (opts.lookup === undefined) local.set(res.name, e.initialRegistrationTime);
      return res;
    },
    find: (ctx, query, next) => next.find(ctx, query),
    async unregister(ctx, entry, next) {
      await next.unregister(ctx, entry);
      local.delete(entry.name);
    },
  };
}
