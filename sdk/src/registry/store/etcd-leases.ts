/**
 * Leases shared by expiry bucket for the etcd registry store. Registrations whose expiries fall into the same
 * bucket of `widthMs` share one lease that ends at the bucket's end, so a burst of registrations costs one lease
 * grant per bucket instead of one raft proposal per registration. The lease never ends before any of its keys'
 * expiries (the bucket end is at or after each of them, and the TTL is rounded up), so etcd never deletes an entry
 * early; it may delete it up to `widthMs` + 1 s late, which only matters when no replica is running: a running
 * store deletes each entry at its exact expiry itself (see etcd.ts).
 */
import type { Clock } from "@nsm-ts/base/clock";
import type { EtcdStoreBase } from "@nsm-ts/base/etcd";

/** Default width of an expiry bucket: 5 s. */
export const DEFAULT_LEASE_BUCKET_MS = 5000;

/** Leases by bucket end (internal to the etcd store). */
export class LeaseBuckets {
  private readonly leases = new Map<number, Promise<string>>();
  private granted = 0;

  constructor(
    private readonly etcd: EtcdStoreBase,
    private readonly widthMs: number,
    private readonly clock: Clock,
  ) {}

  /** Leases granted so far (tests and benchmarks count them). */
  get grants(): number {
    return this.granted;
  }

  /** The lease for an entry expiring at `expiresAtMs`: the bucket's, granted on first use. */
  lease(expiresAtMs: number): Promise<string> {
    const now = this.clock.now();
    // Only past buckets are dropped: there are at most (longest expiry / width) + 1 live ones, never one per entry.
    for (const end of this.leases.keys()) if (end <= now) this.leases.delete(end);
    const end = Math.max(now, Math.ceil(expiresAtMs / this.widthMs) * this.widthMs);
    const have = this.leases.get(end);
    if (have !== undefined) return have;
    this.granted++;
    const p = this.etcd.grantLease(end, now);
    this.leases.set(end, p);
    p.catch(() => {
      if (this.leases.get(end) === p) this.leases.delete(end);
    });
    return p;
  }

  /** Forgets `lease` (etcd no longer has it, e.g. it was revoked by hand): the next put in its bucket grants anew. */
  async forget(lease: string): Promise<void> {
    for (const [end, p] of this.leases) {
      if ((await p.catch(() => undefined)) === lease && this.leases.get(end) === p) this.leases.delete(end);
    }
  }
}

/** True when etcd refused a write because its lease no longer exists. */
export function isLeaseGone(err: unknown): boolean {
  for (let e: unknown = err; e instanceof Error; e = e.cause) if (/lease not found/i.test(e.message)) return true;
  return false;
}
