/**
 * Names held in memory (a vL3 endpoint's member names): A and AAAA records per name, answered authoritatively.
 * A name this server does not hold goes to `next` (the peers' fan-out); a held name without a record of the
 * asked type answers NOERROR with no records (the name exists, RFC 2308 NODATA).
 */
import { isIP } from "node:net";
import type { Answer } from "dns-packet";
import type { DnsHandler } from "./handler.js";
import { normalizeName, questionOf, Rcode, replyTo } from "./message.js";

/** Listener of record changes. */
export type RecordsListener = (name: string, ips: readonly string[] | undefined) => void;

/** A/AAAA records by name; names are case-insensitive, with or without the trailing dot. */
export class MemoryRecords {
  private readonly byName = new Map<string, readonly string[]>();
  private readonly listeners = new Set<RecordsListener>();

  /** Sets the addresses of `name` (bare IPs or CIDRs; the prefix length is dropped). Throws on a non-IP. */
  set(name: string, ips: readonly string[]): void {
    const bare = ips.map((ip) => ip.replace(/\/\d+$/, ""));
    const bad = bare.find((ip) => !isIP(ip));
    if (bad !== undefined) throw new TypeError(`dns: ${JSON.stringify(bad)} is not an IP address (name ${name})`);
    const key = normalizeName(name);
    this.byName.set(key, [...new Set(bare)]);
    for (const l of this.listeners) l(key, bare);
  }

  /** Removes `name`; true when it was held. */
  delete(name: string): boolean {
    const key = normalizeName(name);
    const had = this.byName.delete(key);
    if (had) for (const l of this.listeners) l(key, undefined);
    return had;
  }

  /** The addresses of `name`, or undefined when it is not held. */
  get(name: string): readonly string[] | undefined {
    return this.byName.get(normalizeName(name));
  }

  /** Every held name (normalized: lower case, no trailing dot). */
  names(): string[] {
    return [...this.byName.keys()];
  }

  /** Calls `fn` on every change; returns the unsubscribe function. */
  onChange(fn: RecordsListener): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }
}

/** Options of `newMemoryHandler`. */
export interface MemoryHandlerOptions {
  /** TTL of the answers in seconds; default 60 (members come and go; upstream uses an hour). */
  ttlS?: number;
}

/** Answers A/AAAA for the names in `records`; other names and types go to `next`. */
export function newMemoryHandler(records: MemoryRecords, opts: MemoryHandlerOptions = {}): DnsHandler {
  const ttl = opts.ttlS ?? 60;
  return {
    name: "memory",
    async serve(req, next) {
      const q = questionOf(req.query);
      const ips = q ? records.get(q.name) : undefined;
      if (!q || ips === undefined) return next(req);
      const family = q.type === "A" ? 4 : q.type === "AAAA" ? 6 : 0;
      const answers: Answer[] = ips
        .filter((ip) => isIP(ip) === family)
        .map((ip) => ({ type: q.type as "A" | "AAAA", name: q.name, ttl, class: "IN", data: ip }));
      return replyTo(req.query, Rcode.NOERROR, answers, { authoritative: true });
    },
  };
}

/**
 * Loop guard: a query identical (id, name, type) to one still in flight through this handler is refused, so
 * a misconfiguration that sends our own question back to us ends at once instead of circling until timeout.
 */
export function newNoLoopHandler(): DnsHandler {
  const inFlight = new Set<string>();
  return {
    name: "noloop",
    async serve(req, next) {
      const q = questionOf(req.query);
      const key = `${req.query.packet.id ?? 0}/${normalizeName(q?.name ?? "")}/${q?.type ?? ""}`;
      if (inFlight.has(key)) {
        req.log.warn({ name: q?.name, type: q?.type }, "dns: query came back while in flight (a loop); refusing it");
        return replyTo(req.query, Rcode.REFUSED);
      }
      inFlight.add(key);
      try {
        return await next(req);
      } finally {
        inFlight.delete(key);
      }
    },
  };
}
