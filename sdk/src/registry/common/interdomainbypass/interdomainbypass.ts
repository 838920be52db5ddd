/**
 * interdomainbypass (registry server, nsmgr-proxy): the nsmgr-proxy is the one door of its domain. Endpoints
 * passing through it (a local endpoint registering in a floating registry, a remote endpoint found in another
 * domain) are published with the proxy's own URL, and the URL they really have is remembered in
 * `InterdomainUrls`, which the networkservice `interdomainbypass` element reads to route a Request for such an
 * endpoint. Register: remembers the real URL (before the call, so watchers of the registration already find it),
 * sends the proxy's URL, returns the real one. Find: remembers each result's URL (a local registration wins) and
 * returns the proxy's URL. Unregister: forgets. Network services pass through. Place before the element that
 * calls on (connect, or dnsresolve then connect).
 */
import type { FindResult, RegistryElement, RegistryEntry } from "../../core/index.js";
import { isEndpoint, withUrl } from "../entry.js";

/** Endpoint name → the URL it is really reached at, shared by the registry and networkservice elements. */
export class InterdomainUrls {
  private readonly registered = new Map<string, string>();
  private readonly found = new Map<string, string>();
  /** The URL of endpoint `name`: its registration through this proxy first, else the last Find result. */
  get(name: string): string | undefined {
    return this.registered.get(name) ?? this.found.get(name);
  }
  /** How many names are known (for tests and metrics). */
  get size(): number {
    return new Set([...this.registered.keys(), ...this.found.keys()]).size;
  }
  /** @internal */
  setRegistered(name: string, url: string | undefined): void {
    if (url === undefined) this.registered.delete(name);
    else this.registered.set(name, url);
  }
  /** @internal */
  setFound(name: string, url: string): void {
    this.found.set(name, url);
  }
  /** @internal */
  registeredUrl(name: string): string | undefined {
    return this.registered.get(name);
  }
}

/** Creates the element for a proxy reachable at `proxyUrl`, recording into `urls`. */
export function newServer<T extends RegistryEntry>(urls: InterdomainUrls, proxyUrl: string): RegistryElement<T> {
  return {
    name: "interdomainbypass",
    async register(ctx, entry, next) {
      if (!isEndpoint(entry) || entry.url === "" || entry.url === proxyUrl) return next.register(ctx, entry);
      const url = entry.url;
      const previous = urls.registeredUrl(entry.name);
      urls.setRegistered(entry.name, url);
      try {
        return withUrl(await next.register(ctx, withUrl(entry, proxyUrl)), url);
      } catch (err) {
        urls.setRegistered(entry.name, previous);
        throw err;
      }
    },
    async *find(ctx, query, next): AsyncIterable<FindResult<T>> {
      for await (const r of next.find(ctx, query)) {
        if (!isEndpoint(r.entry)) {
          yield r;
          continue;
        }
        // Our own URL on an endpoint we did not register means the other domain points back at us: recorded all the
        // same, so the Request comes back here and the loop guard refuses it instead of a misleading NotFound.
        const self = r.entry.url === proxyUrl && urls.registeredUrl(r.entry.name) !== undefined;
        if (r.entry.url !== "" && !self && !r.deleted) urls.setFound(r.entry.name, r.entry.url);
        yield { entry: withUrl(r.entry, proxyUrl), deleted: r.deleted };
      }
    },
    async unregister(ctx, entry, next) {
      const known = urls.registeredUrl(entry.name) !== undefined;
      await next.unregister(ctx, known && isEndpoint(entry) ? withUrl(entry, proxyUrl) : entry);
      urls.setRegistered(entry.name, undefined);
    },
  };
}
