/**
 * excludedprefixes (client): keeps a client's connections from getting overlapping addresses (two
 * endpoints handing out the same point-to-point range would break routing in the client's netns). Every
 * Request excludes the addresses this client's other connections hold; when a new connection still comes
 * back with an overlapping address (an endpoint that ignores exclusions, or a race between two requests),
 * it is closed and requested again with the overlapping addresses excluded, up to `maxAttempts` times.
 *
 * Simplifications (compared with upstream): only `src_ip_addrs`/`dst_ip_addrs` are tracked and checked, not
 * routes (shared routes such as a vL3 prefix are legitimate); a refresh that comes back overlapping is
 * logged and accepted, because closing an established connection would cut its data path.
 * Reads/writes: `ip_context.excluded_prefixes`; reads the response's addresses. Place before `connect`.
 */
import { clone, create } from "@bufbuild/protobuf";
import { type Connection, ConnectionContextSchema, IPContextSchema, NetworkServiceRequestSchema } from "@nsm-ts/api/networkservice";
import { type Cidr, cidrOverlaps, parseCidr } from "@nsm-ts/base/netaddr";
import { Code, fail } from "@nsm-ts/base/status";
import { connectionOf } from "../../core/chain.js";
import type { NetworkServiceElement } from "../../core/types.js";

/** Options of the excludedprefixes client. */
export interface ExcludedPrefixesClientOptions {
  /** Requests per new connection before giving up on overlaps; default 3. */
  maxAttempts?: number;
}

function addressesOf(conn: Connection): string[] {
  const ip = conn.context?.ipContext;
  return [...(ip?.srcIpAddrs ?? []), ...(ip?.dstIpAddrs ?? [])];
}

function tryParse(p: string): Cidr | undefined {
  return parseCidr(p, { bare: true, zone: true });
}

/** Creates the excludedprefixes client element; one instance tracks the connections of one client. */
export function newClient(opts: ExcludedPrefixesClientOptions = {}): NetworkServiceElement {
  const maxAttempts = Math.max(1, opts.maxAttempts ?? 3);
  const held = new Map<string, string[]>();

  const othersOf = (id: string): string[] => {
    const out: string[] = [];
    for (const [k, v] of held) if (k !== id) for (const p of v) if (!out.includes(p)) out.push(p);
    return out;
  };

  return {
    name: "excludedprefixes-client",
    async request(ctx, req, next) {
      const id = connectionOf(req).id;
      const established = held.has(id);
      const original = clone(NetworkServiceRequestSchema, req);
      const extra: string[] = [];
      for (let attempt = 1; ; attempt++) {
        const others = othersOf(id);
        const r = clone(NetworkServiceRequestSchema, original);
        const conn = connectionOf(r);
        conn.context ??= create(ConnectionContextSchema);
        conn.context.ipContext ??= create(IPContextSchema);
        const ex = conn.context.ipContext.excludedPrefixes;
        for (const p of [...others, ...extra]) if (!ex.includes(p)) ex.push(p);

        const out = await next.request(ctx, r);
        const mine = addressesOf(out);
        const taken = others.map(tryParse).filter((c): c is Cidr => c !== undefined);
        const conflicts = mine.filter((a) => {
          const c = tryParse(a);
          return c !== undefined && taken.some((t) => cidrOverlaps(c, t));
        });
        if (conflicts.length === 0 || established) {
          if (conflicts.length > 0)
            ctx.log.warn({ connId: id, conflicts }, "excludedprefixes-client: refreshed connection overlaps another connection");
          held.set(id, mine);
          return out;
        }
        ctx.log.info({ connId: id, conflicts, attempt }, "excludedprefixes-client: addresses overlap another connection, requesting again");
        try {
          await next.close(ctx, out);
        } catch (err) {
          ctx.log.warn({ connId: id, err }, "excludedprefixes-client: closing the overlapping connection failed");
        }
        if (attempt >= maxAttempts) {
          fail(
            Code.FailedPrecondition,
            `excludedprefixes-client: the endpoint returned addresses ${conflicts.join(", ")} (ip_context) overlapping other connections of this client ${maxAttempts} times`,
          );
        }
        for (const c of conflicts) if (!extra.includes(c)) extra.push(c);
      }
    },
    async close(ctx, conn, next) {
      try {
        await next.close(ctx, conn);
      } finally {
        held.delete(conn.id);
      }
    },
  };
}
