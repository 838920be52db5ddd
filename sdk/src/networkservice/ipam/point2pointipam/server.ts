/**
 * point2pointipam: gives each connection a point-to-point address pair per address family from a pool
 * (`dst` = endpoint side, `src` = client side, /32 or /128) and the routes between them, honouring the
 * request's `ip_context.excluded_prefixes`. A refresh keeps the same pair (unless it has become excluded);
 * the pair goes back to the pool on Close and when the first Request fails. A Request this instance holds no
 * lease for (the endpoint restarted, or the connection healed to it) keeps the addresses it carries when they are
 * in the pool, free and not excluded, as upstream does; otherwise the addresses and routes it carries from the
 * pool's prefixes are replaced by a new pair, so a connection never collects stale ones.
 *
 * Writes: `context.ip_context.{src,dst}_ip_addrs`, `src_routes` (route to dst), `dst_routes` (route to src);
 * server metadata (the lease). Place after `metadata` (and after `excludedprefixes`).
 */
import { create } from "@bufbuild/protobuf";
import { ConnectionContextSchema, type IPContext, IPContextSchema, RouteSchema } from "@nsm-ts/api/networkservice";
import { MetaKey } from "@nsm-ts/base/context";
import { cidrOverlaps, parseCidr, requireCidr } from "@nsm-ts/base/netaddr";
import { connectionOf } from "../../core/chain.js";
import type { NetworkServiceElement } from "../../core/types.js";
import type { AddressPool, Lease } from "../pool.js";

function addUnique(list: string[], v: string): void {
  if (!list.includes(v)) list.push(v);
}

function addRoute(routes: IPContext["srcRoutes"], prefix: string): void {
  if (!routes.some((r) => r.prefix === prefix)) routes.push(create(RouteSchema, { prefix }));
}

function apply(ip: IPContext, lease: Lease): void {
  for (const p of lease.pairs) {
    addUnique(ip.srcIpAddrs, p.src);
    addUnique(ip.dstIpAddrs, p.dst);
    addRoute(ip.srcRoutes, p.dst);
    addRoute(ip.dstRoutes, p.src);
  }
}

function remove(ip: IPContext, lease: Lease): void {
  const src = new Set(lease.pairs.map((p) => p.src));
  const dst = new Set(lease.pairs.map((p) => p.dst));
  ip.srcIpAddrs = ip.srcIpAddrs.filter((a) => !src.has(a));
  ip.dstIpAddrs = ip.dstIpAddrs.filter((a) => !dst.has(a));
  ip.srcRoutes = ip.srcRoutes.filter((r) => !dst.has(r.prefix));
  ip.dstRoutes = ip.dstRoutes.filter((r) => !src.has(r.prefix));
}

/** Removes every address and route of `ip` that lies inside the pool's prefixes. */
function dropOwned(ip: IPContext, pool: AddressPool): void {
  ip.srcIpAddrs = ip.srcIpAddrs.filter((a) => !pool.owns(a));
  ip.dstIpAddrs = ip.dstIpAddrs.filter((a) => !pool.owns(a));
  ip.srcRoutes = ip.srcRoutes.filter((r) => !pool.owns(r.prefix));
  ip.dstRoutes = ip.dstRoutes.filter((r) => !pool.owns(r.prefix));
}

function excludedNow(lease: Lease, excluded: readonly string[]): boolean {
  const ex = excluded.flatMap((e) => parseCidr(e, { bare: true, zone: true }) ?? []);
  return lease.pairs.some((p) => ex.some((e) => cidrOverlaps(e, requireCidr(p.src)) || cidrOverlaps(e, requireCidr(p.dst))));
}

/** Creates the point-to-point IPAM server element; each instance keeps its own lease per connection. */
export function newServer(pool: AddressPool): NetworkServiceElement {
  const leaseKey = new MetaKey<Lease>("point2pointipam.lease");
  return {
    name: "point2pointipam",
    async request(ctx, req, next) {
      const conn = connectionOf(req);
      conn.context ??= create(ConnectionContextSchema);
      conn.context.ipContext ??= create(IPContextSchema);
      const ip = conn.context.ipContext;
      const md = ctx.metadata.server;

      let lease = md.get(leaseKey);
      if (lease && excludedNow(lease, ip.excludedPrefixes)) {
        ctx.log.info({ connId: conn.id, pairs: lease.pairs }, "point2pointipam: addresses now excluded, allocating new ones");
        remove(ip, lease);
        pool.release(lease);
        md.delete(leaseKey);
        lease = undefined;
      }
      const fresh = lease === undefined;
      if (!lease) {
        lease = pool.recover(ip.srcIpAddrs, ip.dstIpAddrs, ip.excludedPrefixes);
        if (lease) {
          ctx.log.info({ connId: conn.id, pairs: lease.pairs }, "point2pointipam: the connection's addresses recovered");
        } else {
          // Addresses from our prefixes that we do not hold are a lease of an earlier instance (an endpoint that
          // restarted) that cannot be taken back: they are someone else's now or excluded, so they go.
          dropOwned(ip, pool);
          lease = pool.allocate(ip.excludedPrefixes);
        }
        md.set(leaseKey, lease);
      }
      apply(ip, lease);
      try {
        return await next.request(ctx, req);
      } catch (err) {
        if (fresh) {
          pool.release(lease);
          md.delete(leaseKey);
        }
        throw err;
      }
    },
    async close(ctx, conn, next) {
      try {
        await next.close(ctx, conn);
      } finally {
        const lease = ctx.metadata.server.delete(leaseKey);
        if (lease) pool.release(lease);
      }
    },
  };
}
