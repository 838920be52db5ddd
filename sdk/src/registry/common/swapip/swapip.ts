/**
 * swapip (registry server, nsmgr-proxy): an nsmgr-proxy is reached from inside its cluster at an internal address
 * and from other clusters at an external one (a node's public IP, a load balancer). This element rewrites the host
 * of endpoint URLs through the current map (internal → external on the way out of the cluster, and the reverse
 * map's entries apply alike, since the map lists both directions as upstream's map-ip file does): in Register and
 * Unregister entries, in Find templates and in Find results. A URL whose host is not in the map, or that is not
 * a `tcp://host:port` URL, passes unchanged. Reads the map on every call, so a watched file takes effect at once.
 */
import type { FindResult, RegistryElement, RegistryEntry } from "../../core/index.js";
import { isEndpoint, withUrl } from "../entry.js";

/** The current IP map (host → host); called on every call. */
export type IpMapSource = () => Readonly<Record<string, string>>;

/** `url` with its host replaced through `map`; unchanged when it has no mapped host. */
export function swapUrl(url: string, map: Readonly<Record<string, string>>): string {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return url;
  }
  if (u.protocol !== "tcp:" || u.port === "") return url;
  const host = u.hostname.startsWith("[") ? u.hostname.slice(1, -1) : u.hostname;
  const to = map[host];
  if (to === undefined) return url;
  return `tcp://${to.includes(":") ? `[${to}]` : to}:${u.port}`;
}

/** Creates the element reading the map from `source`. */
export function newServer<T extends RegistryEntry>(source: IpMapSource): RegistryElement<T> {
  const swap = (entry: T): T => {
    if (!isEndpoint(entry) || entry.url === "") return entry;
    const url = swapUrl(entry.url, source());
    return url === entry.url ? entry : withUrl(entry, url);
  };
  return {
    name: "swapip",
    async register(ctx, entry, next) {
      return swap(await next.register(ctx, swap(entry)));
    },
    async *find(ctx, query, next): AsyncIterable<FindResult<T>> {
      for await (const r of next.find(ctx, { template: swap(query.template), watch: query.watch })) {
        yield { entry: swap(r.entry), deleted: r.deleted };
      }
    },
    unregister: (ctx, entry, next) => next.unregister(ctx, swap(entry)),
  };
}
