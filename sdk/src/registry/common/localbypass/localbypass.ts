/**
 * localbypass (registry server, nsmgr): a local endpoint registers through the nsmgr with its own URL (often a
 * unix socket only the nsmgr can reach); the upstream registry must instead publish the nsmgr's URL, so remote
 * clients come through the nsmgr. This element remembers each endpoint's real URL, sends `nsmgrUrl` upstream, and
 * puts the real URL back into Register results and into Find results for the endpoints it knows, so local
 * traffic bypasses the extra hop. Network services pass through. Place before the element that calls upstream.
 */
import type { RegistryElement, RegistryEntry } from "../../core/index.js";
import { cloneEntry, isEndpoint } from "../entry.js";

/** Creates the server element for an nsmgr reachable at `nsmgrUrl`. */
export function newServer<T extends RegistryEntry>(nsmgrUrl: string): RegistryElement<T> {
  const real = new Map<string, string>();
  return {
    name: "localbypass",
    async register(ctx, entry, next) {
      if (!isEndpoint(entry) || entry.url === "" || entry.url === nsmgrUrl) return next.register(ctx, entry);
      const url = entry.url;
      const e = cloneEntry(entry);
      if (isEndpoint(e)) e.url = nsmgrUrl;
      const res = cloneEntry(await next.register(ctx, e));
      real.set(entry.name, url);
      if (isEndpoint(res)) res.url = url;
      return res;
    },
    async *find(ctx, query, next) {
      for await (const r of next.find(ctx, query)) {
        const url = real.get(r.entry.name);
        if (url !== undefined && isEndpoint(r.entry) && r.entry.url === nsmgrUrl) {
          const e = cloneEntry(r.entry);
          if (isEndpoint(e)) e.url = url;
          yield { entry: e, deleted: r.deleted };
        } else {
          yield r;
        }
      }
    },
    async unregister(ctx, entry, next) {
      const e = cloneEntry(entry);
      if (isEndpoint(e) && real.has(e.name)) e.url = nsmgrUrl;
      await next.unregister(ctx, e);
      real.delete(entry.name);
    },
  };
}
