/**
 * vl3 (server): gives each client of a vL3 endpoint a host address from the endpoint's prefix and routes to the
 * whole vL3 range through the endpoint, as upstream's `ipcontext/vl3` server does. The address is kept per
 * connection across refreshes; after a prefix reset (the endpoint got a new prefix) the next refresh replaces it
 * and everything of the old prefix in the IP context. A client that keeps an address of the current prefix
 * (a heal to a restarted endpoint) gets it back when it is free. A peer vL3 endpoint (its request brings its
 * own address and a route to its own prefix through it, see `newClient`) gets no address, only routes.
 *
 * Writes: `context.ip_context.src_ip_addrs` (the client's address), `dst_ip_addrs` (the endpoint's own),
 * `src_routes` (own address, own prefix and the vL3 range via the own address), `dst_routes` (the client's
 * addresses). Server metadata: the lease. Placement: after `metadata`, before the mechanisms.
 */
import { create } from "@bufbuild/protobuf";
import { ConnectionContextSchema, type IPContext, IPContextSchema, RouteSchema } from "@nsm-ts/api/networkservice";
import { MetaKey } from "@nsm-ts/base/context";
import { parseCidr, parseIp } from "@nsm-ts/base/netaddr";
import { Code, fail } from "@nsm-ts/base/status";
import { connectionOf } from "../../core/chain.js";
import type { NetworkServiceElement } from "../../core/types.js";
import type { Vl3Ipam } from "./ipam.js";

/** Options of `vl3.newServer`. */
export interface Vl3ServerOptions {
  /**
   * The whole vL3 range, routed through this endpoint on its clients (e.g. the prefix server's pool,
   * "169.254.0.0/16"). Default: the endpoint's prefix widened to /16 (IPv4) or /64 (IPv6), as upstream.
   */
  globalPrefix?: string;
}

interface Lease {
  /** The client's address; undefined for a peer endpoint. */
  addr: string | undefined;
  /** The prefix and generation it was taken in. */
  prefix: string;
  gen: number;
}

/** The lease of a connection (server metadata); exported for the vl3 DNS hook and tests. */
export const leaseKey = new MetaKey<Lease>("vl3.lease");

/** Adds a route unless one for the same prefix is there. */
export function addRoute(routes: IPContext["srcRoutes"], prefix: string, nextHop = ""): void {
  if (!routes.some((r) => r.prefix === prefix)) routes.push(create(RouteSchema, { prefix, nextHop }));
}

/** Adds an address unless it is there. */
export function addAddr(list: string[], addr: string): void {
  if (!list.includes(addr)) list.push(addr);
}

/** Drops every address and route inside `prefix` (the endpoint's previous prefix), or through it, from the IP context. */
export function dropPrefix(ip: IPContext, prefix: string): void {
  const old = parseCidr(prefix);
  if (old === undefined) return;
  const inside = (text: string): boolean => {
    const c = parseCidr(text, { bare: true, zone: true });
    return c !== undefined && c.family === old.family && c.base >= old.base && c.base < old.base + old.size && c.len >= old.len;
  };
  ip.srcIpAddrs = ip.srcIpAddrs.filter((a) => !inside(a));
  ip.dstIpAddrs = ip.dstIpAddrs.filter((a) => !inside(a));
  // Routes through the old own address (the vL3 range) go too: their next hop is gone.
  const stale = (r: { prefix: string; nextHop: string }): boolean => inside(r.prefix) || (r.nextHop !== "" && inside(r.nextHop));
  ip.srcRoutes = ip.srcRoutes.filter((r) => !stale(r));
  ip.dstRoutes = ip.dstRoutes.filter((r) => !stale(r));
}

/**
 * A client of this endpoint holds exactly one address of the endpoint's family, its lease: addresses and routes
 * of that family from elsewhere (a heal from another vL3 endpoint, a caller re-sending an old connection) go.
 */
function keepOnlyLease(ip: IPContext, ipam: Vl3Ipam, addr: string): void {
  const fam = ipam.family;
  const ours = (text: string): boolean => parseIp(text.split("/")[0] ?? "")?.family === fam;
  const self = ipam.selfAddress;
  const hop = ipam.selfIp;
  ip.srcIpAddrs = ip.srcIpAddrs.filter((a) => !ours(a) || a === addr);
  ip.dstIpAddrs = ip.dstIpAddrs.filter((a) => !ours(a) || a === self);
  ip.srcRoutes = ip.srcRoutes.filter((r) => !ours(r.prefix) || r.prefix === self || r.nextHop === hop);
  ip.dstRoutes = ip.dstRoutes.filter((r) => !ours(r.prefix) || r.prefix === addr);
}

/**
 * A peer vL3 endpoint brings its own address and a route to its own prefix (shorter than a host route) via
 * that address; a plain client, even one healing from another vL3 endpoint, carries host routes only.
 */
function isPeerRequest(ip: IPContext, ipam: Vl3Ipam): boolean {
  return ip.dstRoutes.some((r) => {
    const c = parseCidr(r.prefix);
    const hop = parseIp(r.nextHop);
    return (
      c !== undefined &&
      hop !== undefined &&
      c.family === ipam.family &&
      c.len < (c.family === 4 ? 32 : 128) &&
      !ipam.overlaps(r.prefix) &&
      ip.srcIpAddrs.some((a) => a.split("/")[0] === r.nextHop)
    );
  });
}

/** Creates the vL3 IPAM server element for `ipam`. */
export function newServer(ipam: Vl3Ipam, opts: Vl3ServerOptions = {}): NetworkServiceElement {
  return {
    name: "vl3",
    async request(ctx, req, next) {
      // Retryable: the prefix client is still waiting for the prefix server.
      if (!ipam.initialized) fail(Code.Unavailable, "vl3: the endpoint has no prefix yet (prefix server not answered)");
      const conn = connectionOf(req);
      conn.context ??= create(ConnectionContextSchema);
      conn.context.ipContext ??= create(IPContextSchema);
      const ip = conn.context.ipContext;
      const md = ctx.metadata.server;
      let lease = md.get(leaseKey);
      let fresh = false;
      if (lease !== undefined && lease.gen !== ipam.generation) {
        // A prefix reset since the last Request: everything from the old prefix is stale.
        ctx.log.info(
          { connId: conn.id, old: lease.addr, oldPrefix: lease.prefix, prefix: ipam.prefix },
          "vl3: prefix changed, replacing the address",
        );
        dropPrefix(ip, lease.prefix);
        lease = undefined;
        md.delete(leaseKey);
      }
      if (lease === undefined) {
        let addr: string | undefined;
        if (!isPeerRequest(ip, ipam)) {
          const keep = ip.srcIpAddrs.find((a) => ipam.contains(a) && ipam.take(a));
          addr = keep ?? ipam.allocate();
          if (keep === undefined) ctx.log.info({ connId: conn.id, addr }, "vl3: address allocated");
        }
        lease = { addr, prefix: ipam.prefix, gen: ipam.generation };
        md.set(leaseKey, lease);
        fresh = true;
      }
      if (lease.addr !== undefined) {
        keepOnlyLease(ip, ipam, lease.addr);
        addAddr(ip.srcIpAddrs, lease.addr);
      }
      const self = ipam.selfAddress;
      const hop = ipam.selfIp;
      addRoute(ip.srcRoutes, self);
      addRoute(ip.srcRoutes, ipam.prefix, hop);
      // A peer has its own routes into the vL3 range (through every other endpoint); a range route to us would clash.
      if (lease.addr !== undefined) addRoute(ip.srcRoutes, opts.globalPrefix ?? ipam.defaultGlobalPrefix(), hop);
      for (const a of ip.srcIpAddrs) if (parseIp(a.split("/")[0] ?? "")?.family === ipam.family) addRoute(ip.dstRoutes, a);
      addAddr(ip.dstIpAddrs, self);
      try {
        return await next.request(ctx, req);
      } catch (err) {
        if (fresh) {
          md.delete(leaseKey);
          if (lease.addr !== undefined) ipam.free(lease.addr);
        }
        throw err;
      }
    },
    async close(ctx, conn, next) {
      try {
        await next.close(ctx, conn);
      } finally {
        const lease = ctx.metadata.server.delete(leaseKey);
        if (lease?.addr !== undefined && lease.gen === ipam.generation) ipam.free(lease.addr);
      }
    },
  };
}
