/**
 * A DNS server for interdomain tests: answers SRV and A/AAAA for the services of several domains
 * (`registry.nsm-system.<domain>`, `nsmgr-proxy.nsm-system.<domain>`) from a table the test fills, NXDOMAIN for
 * everything else. One server serves all the sandboxes (domains) of a test, as one cluster DNS would. `hang(name)`
 * makes questions about a name go unanswered (a DNS timeout).
 */
import { createDnsServer, type DnsHandler, dnsChain, normalizeName, questionOf, Rcode, replyTo } from "@nsm-ts/sdk/dns";

/** A running domains server. */
export interface DomainsDns {
  /** Where it listens (`127.0.0.1:port`), for `dnsresolve.createDnsResolver([at])`. */
  readonly at: string;
  /** Publishes `name` (a full service name) at `tcp://host:port`: an SRV record with the port, an A/AAAA record. */
  set(name: string, url: string): void;
  /** Removes `name`. */
  remove(name: string): void;
  /** Questions about `name` go unanswered from now on. */
  hang(name: string): void;
  /** Questions answered so far, by `TYPE name`. */
  readonly asked: ReadonlyMap<string, number>;
  close(): Promise<void>;
}

/** Starts a domains server on `listen` (`ip:port`; default 127.0.0.1 on a free port). */
export async function createDomainsDns(listen = "127.0.0.1:0"): Promise<DomainsDns> {
  const table = new Map<string, { host: string; port: number }>();
  const hung = new Set<string>();
  const asked = new Map<string, number>();
  const handler: DnsHandler = {
    name: "domains",
    async serve(req, next) {
      const q = questionOf(req.query);
      if (!q) return next(req);
      const name = normalizeName(q.name);
      asked.set(`${q.type} ${name}`, (asked.get(`${q.type} ${name}`) ?? 0) + 1);
      if (hung.has(name)) {
        // Never answer: the caller's timeout (or the server's query timeout) ends it.
        await new Promise<void>((resolve) => req.signal.addEventListener("abort", () => resolve(), { once: true }));
        return replyTo(req.query, Rcode.SERVFAIL);
      }
      const rec = table.get(name);
      if (!rec) return next(req);
      const v6 = rec.host.includes(":");
      if (q.type === "SRV")
        return replyTo(req.query, Rcode.NOERROR, [
          { type: "SRV", name: q.name, ttl: 5, data: { port: rec.port, target: name, priority: 0, weight: 0 } },
        ]);
      if (q.type === "A" && !v6) return replyTo(req.query, Rcode.NOERROR, [{ type: "A", name: q.name, ttl: 5, data: rec.host }]);
      if (q.type === "AAAA" && v6) return replyTo(req.query, Rcode.NOERROR, [{ type: "AAAA", name: q.name, ttl: 5, data: rec.host }]);
      return replyTo(req.query, Rcode.NOERROR);
    },
  };
  const nxdomain: DnsHandler = { name: "nxdomain", serve: async (req) => replyTo(req.query, Rcode.NXDOMAIN) };
  const server = createDnsServer(dnsChain(handler, nxdomain), { tcp: false });
  const a = await server.listen(listen);
  return {
    at: `${a.host}:${a.port}`,
    set(name, url) {
      const u = new URL(url);
      const host = u.hostname.startsWith("[") ? u.hostname.slice(1, -1) : u.hostname;
      table.set(normalizeName(name), { host, port: Number(u.port) });
    },
    remove: (name) => {
      table.delete(normalizeName(name));
    },
    hang: (name) => {
      hung.add(normalizeName(name));
    },
    asked,
    close: () => server.close(),
  };
}
