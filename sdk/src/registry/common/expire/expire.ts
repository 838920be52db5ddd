/**
 * expire (registry server): an endpoint registration lives until min(requested expiration, caller's token expiry,
 * now + expire period); the result carries that `expiration_time`, and the store element below hands it to the
 * store, which deletes the entry and notifies watchers when it passes (the memory store's timer on `ctx.clock`,
 * etcd's lease — so an entry expires even when the replica that took it is gone). Network services carry no
 * expiration and pass through. Place after `begin`, before the store element.
 */
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { timestampMs } from "@nsm-ts/base/limits";
import type { RegistryElement, RegistryEntry } from "../../core/index.js";
import { cloneEntry, isEndpoint } from "../entry.js";

/** Upstream's default registration lifetime without a refresh (`NSM_EXPIRE_PERIOD`), 1 minute. */
export const DEFAULT_EXPIRE_PERIOD_MS = 60_000;

/** Options of `expire.newServer`. */
export interface ExpireOptions {
  /** Longest lifetime of a registration without a refresh; default 60 000 ms. */
  expirePeriodMs?: number;
}

/** Creates the server element (see the header comment). */
export function newServer<T extends RegistryEntry>(opts: ExpireOptions = {}): RegistryElement<T> {
  const period = opts.expirePeriodMs ?? DEFAULT_EXPIRE_PERIOD_MS;
  return {
    name: "expire",
    async register(ctx, entry, next) {
      if (!isEndpoint(entry)) return next.register(ctx, entry);
      const e = cloneEntry(entry);
      let at = ctx.clock.now() + period;
      if (e.expirationTime !== undefined) at = Math.min(at, timestampMs("expire", "expiration_time", e.expirationTime));
      const tokenExpiry = ctx.peer?.token?.expires.getTime();
      if (tokenExpiry !== undefined && Number.isFinite(tokenExpiry)) at = Math.min(at, tokenExpiry);
      e.expirationTime = timestampFromMs(at);
      return next.register(ctx, e as T);
    },
    find: (ctx, query, next) => next.find(ctx, query),
    unregister: (ctx, entry, next) => next.unregister(ctx, entry),
  };
}
