/**
 * Backend leases (`Backend.lease_seconds`): when each leased backend row runs out. The deadlines live here, not in
 * the tables, on purpose: a renewal only moves a deadline, so it neither bumps the service's revision nor wakes
 * the resolved watchers — otherwise every renewal of every pod would make every forwarder reprogram its node.
 * All deadlines share one timer on the model's clock (DeadlineQueue); an expiry is an ordinary model delete.
 */
import { type Clock, DeadlineQueue } from "@nsm-ts/base/clock";
import { Code, fail } from "@nsm-ts/base/status";

/** Longest lease a backend may ask for (a day): longer is not a lease but a forgotten row. */
export const MAX_LEASE_SECONDS = 86_400;

/** Checks `lease_seconds` of a backend: 0 (none) or 1..MAX_LEASE_SECONDS. */
export function checkLease(seconds: number): number {
  if (seconds > MAX_LEASE_SECONDS) fail(Code.InvalidArgument, `services: lease_seconds: ${seconds} is above ${MAX_LEASE_SECONDS}`);
  return seconds;
}

/** The lease deadlines of backend rows, keyed by backend key; `onExpired(key)` runs when one passes unrenewed. */
export class BackendLeases {
  private readonly queue: DeadlineQueue<string>;

  constructor(
    private readonly clock: Clock,
    onExpired: (key: string) => void,
  ) {
    this.queue = new DeadlineQueue(clock, onExpired);
  }

  /** Number of running leases. */
  get size(): number {
    return this.queue.size;
  }

  /** A row was written (inside its write transaction): (re)starts its lease, or drops it when it has none. */
  written(key: string, leaseSeconds: number): void {
    if (leaseSeconds === 0) this.queue.delete(key);
    else this.queue.set(key, this.clock.now() + leaseSeconds * 1000);
  }

  /** A row is gone (deleted, replaced by a source, or expired). */
  gone(key: string): void {
    this.queue.delete(key);
  }

  /** True while `key` has a lease that has not run out (an expiry checks it again inside its write). */
  running(key: string): boolean {
    return this.queue.get(key) !== undefined;
  }

  /** Stops the timer; leased rows then stay until deleted. */
  close(): void {
    this.queue.close();
  }
}
