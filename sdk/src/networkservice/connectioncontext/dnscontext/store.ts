/**
 * The DNS configs of all connections of one client (or of one vL3 endpoint's peers), kept per connection and
 * read merged. A change (a connection's configs differ from before, or it closed) notifies the listeners: the
 * program starts its forwarder and rewrites the resolver config on the first one.
 */
import type { DnsConfigLike } from "../../../dns/route.js";

/** A DNS config as the store keeps it (a plain copy, never the connection's message). */
export interface StoredDnsConfig {
  readonly dnsServerIps: readonly string[];
  readonly searchDomains: readonly string[];
}

/** True when `a` and `b` name the same servers and domains, in any order (upstream's `ContainsDNSConfig`). */
export function sameDnsConfig(a: DnsConfigLike, b: DnsConfigLike): boolean {
  const eq = (x: readonly string[], y: readonly string[]): boolean => {
    const sx = [...new Set(x)].sort();
    const sy = [...new Set(y)].sort();
    return sx.length === sy.length && sx.every((v, i) => v === sy[i]);
  };
  return eq(a.dnsServerIps, b.dnsServerIps) && eq(a.searchDomains, b.searchDomains);
}

const copy = (c: DnsConfigLike): StoredDnsConfig => ({ dnsServerIps: [...c.dnsServerIps], searchDomains: [...c.searchDomains] });

/** Listener of store changes. */
export type DnsConfigListener = (configs: readonly StoredDnsConfig[]) => void;

/** DNS configs by connection id, merged on read. */
export class DnsConfigStore {
  private readonly byConn = new Map<string, readonly StoredDnsConfig[]>();
  private readonly listeners = new Set<DnsConfigListener>();

  /** Sets the configs of connection `connId` (empty keeps the connection with none); notifies on a change. */
  set(connId: string, configs: readonly DnsConfigLike[]): void {
    const next = configs.filter((c) => c.dnsServerIps.length > 0).map(copy);
    const prev = this.byConn.get(connId);
    this.byConn.set(connId, next);
    const same = prev !== undefined && prev.length === next.length && prev.every((c, i) => sameDnsConfig(c, next[i] as StoredDnsConfig));
    if (!same) this.emit();
  }

  /** Forgets connection `connId`; notifies when it had configs. */
  delete(connId: string): void {
    const prev = this.byConn.get(connId);
    this.byConn.delete(connId);
    if (prev && prev.length > 0) this.emit();
  }

  /** Every config of every connection, duplicates (same servers and domains) once. */
  configs(): StoredDnsConfig[] {
    const out: StoredDnsConfig[] = [];
    for (const list of this.byConn.values()) {
      for (const c of list) if (!out.some((o) => sameDnsConfig(o, c))) out.push(c);
    }
    return out;
  }

  /** The configs of one connection. */
  get(connId: string): readonly StoredDnsConfig[] | undefined {
    return this.byConn.get(connId);
  }

  /** Calls `fn` with the merged configs on every change; returns the unsubscribe function. */
  onChange(fn: DnsConfigListener): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  private emit(): void {
    const merged = this.configs();
    for (const l of [...this.listeners]) l(merged);
  }
}
