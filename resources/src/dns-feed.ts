/**
 * Serving the DNS records: a watch of the `dns` records kept as name → addresses in any sink with `set` and
 * `delete` (the DNS server's `MemoryRecords` of `@nsm-ts/sdk/dns`). Several records with one name answer with all
 * their addresses. A watch that ends (slow, store restarted, compacted) starts again from the current records on
 * the clock after `retryMs`, replacing what the sink held.
 */
import type { DnsRecord } from "@nsm-ts/api/resources";
import { type Clock, realClock } from "@nsm-ts/base/clock";
import { type Logger, silentLogger } from "@nsm-ts/base/log";
import type { ResourceStore } from "./store.js";

/** Where the names go: `MemoryRecords` of `@nsm-ts/sdk/dns` fits. */
export interface DnsRecordSink {
  set(name: string, ips: readonly string[]): void;
  delete(name: string): unknown;
}

/** Options of `followDnsRecords`. */
export interface FollowDnsRecordsOptions {
  /** Ends the feed. */
  signal: AbortSignal;
  /** Delay before a failed watch starts again; default 1000 ms. */
  retryMs?: number;
  clock?: Clock;
  log?: Logger;
}

/** Keeps `sink` equal to the store's DNS records until `signal` aborts; resolves then. */
export async function followDnsRecords(store: ResourceStore, sink: DnsRecordSink, opts: FollowDnsRecordsOptions): Promise<void> {
  const clock = opts.clock ?? realClock;
  const log = opts.log ?? silentLogger;
  const inSink = new Set<string>();
  while (!opts.signal.aborted) {
    const byId = new Map<string, DnsRecord>();
    const fresh = new Set<string>();
    /** Sets `name` to the addresses of every record with that name (or deletes it). */
    const publish = (name: string): void => {
      const ips = new Set<string>();
      for (const r of byId.values()) if (r.name === name) for (const a of r.addresses) ips.add(a);
      fresh.add(name);
      if (ips.size === 0) {
        sink.delete(name);
        inSink.delete(name);
      } else {
        sink.set(name, [...ips]);
        inSink.add(name);
      }
    };
    try {
      for await (const ev of store.watch("dns", { signal: opts.signal })) {
        if (ev.type === "synced") {
          // Names left from an earlier watch that no current record has.
          for (const n of [...inSink]) {
            if (fresh.has(n)) continue;
            sink.delete(n);
            inSink.delete(n);
          }
          continue;
        }
        const id = ev.type === "put" ? ev.record.id : ev.id;
        const before = byId.get(id)?.name;
        if (ev.type === "put") byId.set(id, ev.record.value as DnsRecord);
        else byId.delete(id);
        const after = byId.get(id)?.name;
        if (before !== undefined) publish(before);
        if (after !== undefined && after !== before) publish(after);
      }
      return;
    } catch (err) {
      log.warn({ err }, "resources: DNS record watch ended; starting again from the current records");
    }
    try {
      await clock.sleep(opts.retryMs ?? 1000, opts.signal);
    } catch {
      return;
    }
  }
}
