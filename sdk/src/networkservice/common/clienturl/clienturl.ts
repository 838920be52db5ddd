/**
 * clienturl: puts the next hop's URL into the context (`urlKey`) for the elements after it; `connect` dials
 * the URL it finds there. Discovery elements (roundrobin, discoverforwarder) set the same key per candidate;
 * this element is for chains whose next hop is fixed (a client talking to its nsmgr, a passthrough endpoint).
 * Reads: nothing. Writes: context value `urlKey`. Place before `connect`.
 */

import type { CallContext } from "@nsm-ts/base/context";
import { ContextKey } from "@nsm-ts/base/context";
import type { NetworkServiceElement } from "../../core/types.js";

/** The URL of the next hop (`unix:///path` or `tcp://host:port`), read by `connect` and `filtermechanisms`. */
export const urlKey = new ContextKey<URL>("clienturl.url");

/** The next hop's URL in `ctx`, or undefined when no element before set one. */
export function clientUrlOf(ctx: CallContext): URL | undefined {
  return urlKey.get(ctx);
}

/** Parses a next-hop URL, failing early on strings that are not URLs (a configuration error). */
export function toUrl(u: URL | string, element = "clienturl"): URL {
  if (u instanceof URL) return u;
  try {
    return new URL(u);
  } catch (err) {
    throw new Error(`${element}: invalid URL "${u}"`, { cause: err });
  }
}

function make(u: URL | string, name: string): NetworkServiceElement {
  const url = toUrl(u, name);
  return {
    name,
    request: (ctx, req, next) => next.request(ctx.with(urlKey, url), req),
    close: (ctx, conn, next) => next.close(ctx.with(urlKey, url), conn),
  };
}

/** Client side: every Request and Close goes to `u`. */
export function newClient(u: URL | string): NetworkServiceElement {
  return make(u, "clienturl-client");
}

/** Server side (a server chain continuing as a client to a fixed next hop): every call goes to `u`. */
export function newServer(u: URL | string): NetworkServiceElement {
  return make(u, "clienturl");
}
