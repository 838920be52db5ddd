/**
 * store (registry server, upstream's `memory` element): the terminal element that keeps entries in a
 * `RegistryStore` (memory or etcd). Register puts (with the entry's `expiration_time` as the store expiry, so the
 * store deletes it and tells watchers when it passes), Unregister deletes, Find streams the store's template
 * matches and, with watch, every later change until `ctx.signal` aborts. Place last; it does not call `next`.
 * Each Register is a compare-and-swap against the revision it read, with `check` run on what was read, so a rule
 * such as "only the owner may overwrite" holds even between registry replicas sharing one etcd.
 */
import type { CallContext } from "@nsm-ts/base/context";
import { timestampMs } from "@nsm-ts/base/limits";
import { Code, isStatusError } from "@nsm-ts/base/status";
import type { FindResult, RegistryElement, RegistryEntry } from "../../core/index.js";
import type { RegistryStore } from "../../store/index.js";
import { isEndpoint } from "../entry.js";

/** Options of `store.newServer`. */
export interface StoreElementOptions<T extends RegistryEntry> {
  /** Runs on the stored entry (if any) and the incoming one inside the compare-and-swap; throw to refuse. */
  check?: (ctx: CallContext, stored: T | undefined, incoming: T) => Promise<void>;
  /** Compare-and-swap attempts when another writer got in between; default 5, then `Aborted`. */
  casAttempts?: number;
}

/** Creates the terminal server element over `store`. */
export function newServer<T extends RegistryEntry>(store: RegistryStore<T>, opts: StoreElementOptions<T> = {}): RegistryElement<T> {
  const attempts = opts.casAttempts ?? 5;
  return {
    name: "store",
    async register(ctx, entry) {
      const expiresAtMs =
        isEndpoint(entry) && entry.expirationTime !== undefined ? timestampMs("store", "expiration_time", entry.expirationTime) : undefined;
      for (let i = 1; ; i++) {
        const cur = await store.getVersioned(entry.name);
        await opts.check?.(ctx, cur?.entry, entry);
        try {
          await store.put(entry, { expectRevision: cur?.revision ?? "0", ...(expiresAtMs === undefined ? {} : { expiresAtMs }) });
          return entry;
        } catch (err) {
          if (i >= attempts || !isStatusError(err, Code.Aborted)) throw err;
          ctx.log.debug({ element: "store", name: entry.name }, "concurrent update; reading again");
        }
      }
    },
    async *find(ctx, query): AsyncIterable<FindResult<T>> {
      if (ctx.signal.aborted) return;
      for await (const ev of store.find(query.template, { watch: query.watch, signal: ctx.signal })) {
        yield { entry: ev.entry, deleted: ev.deleted };
      }
    },
    async unregister(_ctx, entry) {
      await store.delete(entry.name);
    },
  };
}
