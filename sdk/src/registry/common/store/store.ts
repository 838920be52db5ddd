/**
 * store (registry server, upstream's `memory` element): the terminal element that keeps entries in a
 * `RegistryStore` (memory or etcd). Register puts (with the entry's `expiration_time` as the store expiry, so the
 * store deletes it and tells watchers when it passes), Unregister deletes, Find streams the store's template
 * matches and, with watch, every later change until `ctx.signal` aborts. Place last; it does not call `next`.
 */
import { timestampDate } from "@bufbuild/protobuf/wkt";
import type { FindResult, RegistryElement, RegistryEntry } from "../../core/index.js";
import type { RegistryStore } from "../../store/index.js";
import { isEndpoint } from "../entry.js";

/** Creates the terminal server element over `store`. */
export function newServer<T extends RegistryEntry>(store: RegistryStore<T>): RegistryElement<T> {
  return {
    name: "store",
    async register(_ctx, entry) {
      const expiresAtMs =
        isEndpoint(entry) && entry.expirationTime !== undefined ? timestampDate(entry.expirationTime).getTime() : undefined;
      await store.put(entry, expiresAtMs === undefined ? {} : { expiresAtMs });
      return entry;
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
