/**
 * Routing by DNS config: a query for a name under a config's search domain goes to that config's servers
 * (the longest matching domain wins, several configs with it are fanned out together); any other name goes
 * to the servers of configs without search domains. When that yields no NOERROR answer, the fallback servers
 * (the resolver the host had before us) are asked.
 */

import { type DnsServerAddress, formatServerAddress, parseServerAddress } from "./exchange.js";
import { type FanoutOptions, fanout } from "./fanout.js";
import type { DnsHandler, DnsRequest } from "./handler.js";
import { normalizeName, questionOf, Rcode, rcodeOf, replyTo } from "./message.js";

/** One DNS config as the connection context carries it (`connectioncontext.DNSConfig`). */
export interface DnsConfigLike {
  readonly dnsServerIps: readonly string[];
  readonly searchDomains: readonly string[];
}

/** Options of `newRouteHandler`. */
export interface RouteOptions extends FanoutOptions {
  /** Servers asked when the routed ones give no NOERROR answer (the original resolver); default none. */
  fallback?: () => readonly DnsServerAddress[];
  /** Servers never asked (our own listening address, so a config naming it cannot loop); default none. */
  exclude?: readonly DnsServerAddress[];
}

/** True when `name` is `domain` or below it (both normalized). */
export function inDomain(name: string, domain: string): boolean {
  return domain === "" || name === domain || name.endsWith(`.${domain}`);
}

/** The servers for `name` under `configs`; see the module comment. Unparsable server entries are skipped. */
export function routeServers(
  name: string,
  configs: readonly DnsConfigLike[],
  exclude: readonly DnsServerAddress[] = [],
): DnsServerAddress[] {
  const n = normalizeName(name);
  let bestLen = -1;
  let chosen: DnsConfigLike[] = [];
  for (const c of configs) {
    for (const d of c.searchDomains.map(normalizeName).filter((x) => x !== "")) {
      if (!inDomain(n, d) || d.length < bestLen) continue;
      if (d.length > bestLen) chosen = [];
      bestLen = d.length;
      if (!chosen.includes(c)) chosen.push(c);
    }
  }
  if (bestLen < 0) chosen = configs.filter((c) => c.searchDomains.every((d) => normalizeName(d) === ""));
  const skip = new Set(exclude.map(formatServerAddress));
  return chosen
    .flatMap((c) => c.dnsServerIps.flatMap((ip) => parseServerAddress(ip) ?? []))
    .filter((s) => !skip.has(formatServerAddress(s)));
}

/**
 * The forwarder's router: answers from the servers `routeServers` picks for the question under `configs()`,
 * then the fallback; answers SERVFAIL when nobody answered (it never calls `next`).
 */
export function newRouteHandler(configs: () => readonly DnsConfigLike[], opts: RouteOptions = {}): DnsHandler {
  return {
    name: "route",
    async serve(req: DnsRequest) {
      const q = questionOf(req.query);
      if (!q) return replyTo(req.query, Rcode.FORMERR);
      const exclude = opts.exclude ?? [];
      const routed = routeServers(q.name, configs(), exclude);
      const answer = await fanout(routed, req, opts);
      if (answer && rcodeOf(answer) === Rcode.NOERROR) return answer;
      const taken = new Set(routed.map(formatServerAddress));
      const skip = new Set(exclude.map(formatServerAddress));
      const fallback = (opts.fallback?.() ?? []).filter((s) => !taken.has(formatServerAddress(s)) && !skip.has(formatServerAddress(s)));
      if (fallback.length > 0 && !req.signal.aborted) {
        const second = await fanout(fallback, req, opts);
        if (second) return second;
      }
      return answer ?? replyTo(req.query, Rcode.SERVFAIL);
    },
  };
}
