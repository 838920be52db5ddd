/**
 * localbypass (registry server, nsmgr): a local endpoint registers through the nsmgr with its own URL (often a
 * unix socket only the nsmgr can reach); the upstream registry must instead publish the nsmgr's URL, so remote
 * clients come through the nsmgr. This element remembers each endpoint's real URL, sends `nsmgrUrl` upstream, and
 * puts the real URL back into Register results and into Find results for the endpoints it knows, so local
 * traffic bypasses the extra hop. Network services pass through. Place before the element that calls upstream.
 *
 * The real URL is recorded before the upstream Register, not after it: the registry reports the new entry to
 * watchers during that call, and a watcher (a forwarder waiting for the endpoint, the nsmgr waiting for its
 * forwarder) must already get the real URL from that very event. A failed Register restores the previous record.
 */
import type { RegistryElement, RegistryEntry } from "../../core/index.js";
import { isInterdomain } from "../dnsresolve/names.js";
import { isEndpoint, withUrl } from "../entry.js";

/** Creates the server element for an nsmgr reachable at `nsmgrUrl`. */
export function newServer<T extends RegistryEntry>(nsmgrUrl: string): RegistryElement<T> {
  const real = new Map<string, string>();
  return {
    name: "localbypass",
    async register(ctx, entry, next) {
      if (!isEndpoint(entry) || entry.url === "" || entry.url === nsmgrUrl) return next.register(ctx, entry);
      const url = entry.url;
      const previous = real.get(entry.name);
      real.set(entry.name, url);
      try {
        return withUrl(await next.register(ctx, withUrl(entry, nsmgrUrl)), url);
      } catch (err) {
        if (previous === undefined) real.delete(entry.name);
        else real.set(entry.name, previous);
        throw err;
      }
    },
    async *find(ctx, query, next) {
      for await (const r of next.find(ctx, query)) {
        // An interdomain name (a local endpoint registered in a floating registry) comes back with the URL of
        // this domain's nsmgr-proxy, not ours; the endpoint is still ours to reach directly.
        const ours = isEndpoint(r.entry) && (r.entry.url === nsmgrUrl || isInterdomain(r.entry.name));
        const url = ours ? real.get(r.entry.name) : undefined;
        yield url === undefined ? r : { entry: withUrl(r.entry, url), deleted: r.deleted };
      }
    },
    async unregister(ctx, entry, next) {
      await next.unregister(ctx, real.has(entry.name) ? withUrl(entry, nsmgrUrl) : entry);
      real.delete(entry.name);
    },
  };
}
