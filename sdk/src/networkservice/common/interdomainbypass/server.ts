/**
 * interdomainbypass (server, nsmgr-proxy): routes a Request through the domain's edge. An endpoint the proxy's
 * registry knows (`InterdomainUrls`: found in another domain, or registered here in a floating registry) is
 * reached at its remembered URL: the element sets `clienturl.urlKey` and the proxy's discovery is skipped. Any
 * other endpoint is one of this domain's, asked for from outside as `nse@domain`: the element strips `@domain`
 * from `network_service` and `network_service_endpoint_name` for the chain after it (discover finds the local
 * endpoint) and puts the names back on the way out, so the caller sees the names it asked for.
 * Reads: `connection.network_service_endpoint_name`, `connection.network_service`. Writes: context value
 * `clienturl.urlKey` (known endpoints). Place after the hop head, before discover.
 */
import type { Connection } from "@nsm-ts/api/networkservice";
import type { CallContext } from "@nsm-ts/base/context";
import { ContextKey } from "@nsm-ts/base/context";
import { Code, fail } from "@nsm-ts/base/status";
import { targetOf } from "../../../registry/common/dnsresolve/index.js";
import type { InterdomainUrls } from "../../../registry/common/interdomainbypass/index.js";
import { connectionOf } from "../../core/chain.js";
import type { NetworkServiceElement } from "../../core/types.js";
import { urlKey } from "../clienturl/index.js";

/** Set (true) when interdomainbypass chose the next hop, so discovery after it stands aside. */
export const routedKey = new ContextKey<boolean>("interdomainbypass.routed");

function routed(ctx: CallContext, urls: InterdomainUrls, conn: Connection): CallContext | undefined {
  const u = conn.networkServiceEndpointName === "" ? undefined : urls.get(conn.networkServiceEndpointName);
  if (u === undefined) return undefined;
  let url: URL;
  try {
    url = new URL(u);
  } catch {
    return fail(Code.FailedPrecondition, `interdomainbypass: endpoint "${conn.networkServiceEndpointName}" has an invalid URL "${u}"`);
  }
  return ctx.with(urlKey, url).with(routedKey, true);
}

/** Creates the element reading `urls` (shared with the proxy's registry `interdomainbypass` element). */
export function newServer(urls: InterdomainUrls): NetworkServiceElement {
  return {
    name: "interdomainbypass",
    async request(ctx, req, next) {
      const conn = connectionOf(req);
      const c = routed(ctx, urls, conn);
      if (c) return next.request(c, req);
      const own = { ns: conn.networkService, nse: conn.networkServiceEndpointName };
      conn.networkService = targetOf(own.ns);
      conn.networkServiceEndpointName = targetOf(own.nse);
      const out = await next.request(ctx, req);
      out.networkService = own.ns;
      if (own.nse !== "") out.networkServiceEndpointName = own.nse;
      return out;
    },
    async close(ctx, conn, next) {
      const c = routed(ctx, urls, conn);
      if (c) return next.close(c, conn);
      const own = { ns: conn.networkService, nse: conn.networkServiceEndpointName };
      conn.networkService = targetOf(own.ns);
      conn.networkServiceEndpointName = targetOf(own.nse);
      try {
        await next.close(ctx, conn);
      } finally {
        conn.networkService = own.ns;
        conn.networkServiceEndpointName = own.nse;
      }
    },
  };
}

/** Wraps discovery elements (discover → roundrobin) so they run only when interdomainbypass did not route. */
export function unlessRouted(discovery: NetworkServiceElement): NetworkServiceElement {
  return {
    name: "interdomainbypass-discovery",
    request: (ctx, req, next) => (routedKey.get(ctx) ? next.request(ctx, req) : discovery.request(ctx, req, next)),
    close: (ctx, conn, next) => (routedKey.get(ctx) ? next.close(ctx, conn) : discovery.close(ctx, conn, next)),
  };
}

/**
 * How far back a proxy looks for itself. Proxies forward only to proxies or into their own domain, so a cycle of
 * proxies shows this proxy among the last few segments; a legitimate second pass (a passthrough endpoint asking
 * another domain again) has at least an nsmgr, a forwarder, the endpoint and its client in between.
 */
const LOOP_WINDOW = 4;

/**
 * Refuses a Request or Close that just passed through the hop named `name` (its segment among the last
 * `LOOP_WINDOW` up to the path's current index): a loop of proxies (a domain's DNS pointing back at a proxy on
 * the way). Place first.
 */
export function newLoopGuard(name: string): NetworkServiceElement {
  const check = (conn: Connection): void => {
    const path = conn.path;
    if (!path) return;
    const from = Math.max(0, path.index + 1 - LOOP_WINDOW);
    const at = path.pathSegments.slice(from, path.index + 1).findIndex((s) => s.name === name);
    const seen = at < 0 ? -1 : from + at;
    if (seen >= 0)
      fail(
        Code.FailedPrecondition,
        `interdomainbypass: loop: connection "${conn.id}" already passed ${name} (path.path_segments[${seen}]) on its way to "${conn.networkServiceEndpointName || conn.networkService}"`,
      );
  };
  return {
    name: "loopguard",
    request(ctx, req, next) {
      check(connectionOf(req));
      return next.request(ctx, req);
    },
    close(ctx, conn, next) {
      check(conn);
      return next.close(ctx, conn);
    },
  };
}
