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
    const stripped = ips.map((ip) => ip.replace(/\/\d+$/, ""));
    const bad = stripped.find((ip) => !isIP(ip));
    if (bad !== undefined) throw new TypeError(`dns: ${JSON.stringify(bad)} is not an IP address (name ${name})`);
    const bare = stripped.map((ip) => (isIP(ip) === 6 ? canonicalV6(ip) : ip));
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

  /** The names holding `ip` (for PTR answers). */
  namesOf(ip: string): string[] {
    return [...this.byName].filter(([, ips]) => ips.includes(ip)).map(([n]) => n);
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

/** The address a reverse name stands for (`4.3.2.1.in-addr.arpa` → `1.2.3.4`, nibbles under `ip6.arpa`). */
export function addressOfReverseName(name: string): string | undefined {
  const n = normalizeName(name);
  if (n.endsWith(".in-addr.arpa")) {
    const parts = n.slice(0, -".in-addr.arpa".length).split(".").reverse();
    const ip = parts.join(".");
    return parts.length === 4 && isIP(ip) === 4 ? ip : undefined;
  }
  if (n.endsWith(".ip6.arpa")) {
    const nibbles = n.slice(0, -".ip6.arpa".length).split(".").reverse();
    if (nibbles.length !== 32 || nibbles.some((x) => !/^[0-9a-f]$/.test(x))) return undefined;
    const groups = Array.from({ length: 8 }, (_, i) =>
      nibbles
        .slice(i * 4, i * 4 + 4)
        .join("")
        .replace(/^0{1,3}/, ""),
    );
    return canonicalV6(groups.join(":"));
  }
  return undefined;
}

/** `fd00:0:0:0:0:0:0:a` → `fd00::a`, the form `MemoryRecords` compares (as Node prints addresses). */
function canonicalV6(ip: string): string {
  return new URL(`http://[${ip}]/`).hostname.slice(1, -1);
}

/**
 * Answers A/AAAA for the names in `records`, and PTR for their addresses (upstream's memory handler does too);
 * other names and types go to `next`.
 */
export function newMemoryHandler(records: MemoryRecords, opts: MemoryHandlerOptions = {}): DnsHandler {
  const ttl = opts.ttlS ?? 60;
  return {
    name: "memory",
    async serve(req, next) {
      const q = questionOf(req.query);
      if (q?.type === "PTR") {
        const ip = addressOfReverseName(q.name);
        const held = ip === undefined ? [] : records.namesOf(isIP(ip) === 6 ? canonicalV6(ip) : ip);
        if (held.length === 0) return next(req);
        const answers: Answer[] = held.map((n) => ({ type: "PTR", name: q.name, ttl, class: "IN", data: `${n}.` }));
        return replyTo(req.query, Rcode.NOERROR, answers, { authoritative: true });
      }
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
