/**
 * How the interdomain elements find another domain's registry and nsmgr-proxy: an SRV record for the port and
 * A/AAAA records for the address of `<service>.<domain>` (`registry.nsm-system.<domain>`,
 * `nsmgr-proxy.nsm-system.<domain>`). `createDnsResolver` asks the DNS servers it is given (tests point it at their
 * own server); any other `DomainResolver` (a static table, a cache) fits the same slot.
 */
import type { Clock } from "@nsm-ts/base/clock";
import type { CallContext } from "@nsm-ts/base/context";
import { Code, fail, isStatusError } from "@nsm-ts/base/status";
import { type DnsServerAddress, exchange, formatServerAddress, parseServerAddress } from "../../../dns/exchange.js";
import { buildQuery, Rcode, rcodeOf } from "../../../dns/message.js";

/** The registry service looked up in a domain (`registry.nsm-system.<domain>`). */
export const DEFAULT_REGISTRY_SERVICE = "registry.nsm-system";
/** The nsmgr-proxy service looked up in a domain (`nsmgr-proxy.nsm-system.<domain>`). */
export const DEFAULT_NSMGR_PROXY_SERVICE = "nsmgr-proxy.nsm-system";

/** One SRV record. */
export interface SrvRecord {
  readonly port: number;
  readonly target: string;
}

/**
 * Looks names up. Both methods reject with a status: `NotFound` when the name does not exist or has no such
 * record, `Unavailable` when no server answered in time.
 */
export interface DomainResolver {
  lookupSrv(ctx: CallContext, name: string): Promise<SrvRecord[]>;
  lookupIp(ctx: CallContext, name: string): Promise<string[]>;
}

/** Options of `createDnsResolver`. */
export interface DnsResolverOptions {
  /** Time one query may take before the next server is asked; default 2000 ms, never past the call's deadline. */
  queryTimeoutMs?: number;
  /** Clock of the query timeouts; default the real one. */
  clock?: Clock;
}

type Kind = "SRV" | "A" | "AAAA";

/** A resolver asking `servers` (`ip`, `ip:port`, `[ipv6]:port`) in order; the first answer counts. */
export function createDnsResolver(servers: readonly string[], opts: DnsResolverOptions = {}): DomainResolver {
  if (servers.length === 0) throw new Error("dnsresolve: no DNS server given");
  const addrs: DnsServerAddress[] = servers.map(
    (s) =>
      parseServerAddress(s) ??
      (() => {
        throw new Error(`dnsresolve: invalid DNS server address "${s}"`);
      })(),
  );
  const perQueryMs = opts.queryTimeoutMs ?? 2000;
  const ask = async (ctx: CallContext, name: string, type: Kind): Promise<unknown[]> => {
    const errors: string[] = [];
    for (const server of addrs) {
      const remaining = ctx.remainingMs();
      if (remaining !== undefined && remaining <= 0) break;
      const timeoutMs = remaining === undefined ? perQueryMs : Math.min(perQueryMs, remaining);
      try {
        const answer = await exchange(server, buildQuery(name, type), {
          timeoutMs,
          signal: ctx.signal,
          ...(opts.clock === undefined ? {} : { clock: opts.clock }),
        });
        const rcode = rcodeOf(answer);
        if (rcode === Rcode.NXDOMAIN)
          fail(Code.NotFound, `dnsresolve: ${name} does not exist (NXDOMAIN from ${formatServerAddress(server)})`);
        if (rcode !== Rcode.NOERROR) {
          errors.push(`${formatServerAddress(server)}: rcode ${rcode}`);
          continue;
        }
        return (answer.packet.answers ?? []).flatMap((a) => (a.type === type && "data" in a ? [a.data as unknown] : []));
      } catch (err) {
        if (isStatusError(err)) throw err;
        errors.push(`${formatServerAddress(server)}: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
    return fail(Code.Unavailable, `dnsresolve: no DNS server answered ${type} ${name} in time (${errors.join("; ") || "deadline passed"})`);
  };
  return {
    async lookupSrv(ctx, name) {
      const data = (await ask(ctx, name, "SRV")) as Array<{ port: number; target: string; priority?: number }>;
      return [...data].sort((a, b) => (a.priority ?? 0) - (b.priority ?? 0)).map((d) => ({ port: d.port, target: d.target }));
    },
    async lookupIp(ctx, name) {
      const [v4, v6] = await Promise.allSettled([ask(ctx, name, "A"), ask(ctx, name, "AAAA")]);
      const ips = [...(v4.status === "fulfilled" ? v4.value : []), ...(v6.status === "fulfilled" ? v6.value : [])] as string[];
      if (ips.length > 0) return ips;
      if (v4.status === "rejected") throw v4.reason;
      if (v6.status === "rejected") throw v6.reason;
      return [];
    },
  };
}

/**
 * The URL of `<service>.<domain>`: `tcp://<first address>:<port of the first SRV record>`. `NotFound` naming the
 * domain when it has no such service, `Unavailable` when DNS did not answer in time.
 */
export async function resolveDomain(ctx: CallContext, resolver: DomainResolver, service: string, domain: string): Promise<string> {
  if (domain === "") fail(Code.InvalidArgument, "dnsresolve: the name has no domain");
  const name = `${service}.${domain}`;
  const notFound = (what: string): never => fail(Code.NotFound, `dnsresolve: domain "${domain}" is not found: ${what} ${name}`);
  let srv: SrvRecord[];
  let ips: string[];
  try {
    [srv, ips] = await Promise.all([resolver.lookupSrv(ctx, name), resolver.lookupIp(ctx, name)]);
  } catch (err) {
    if (isStatusError(err, Code.NotFound)) return notFound("no record");
    throw err;
  }
  const port = srv[0]?.port ?? notFound("no SRV record");
  const ip = ips[0] ?? notFound("no A/AAAA record");
  return ip.includes(":") ? `tcp://[${ip}]:${port}` : `tcp://${ip}:${port}`;
}
