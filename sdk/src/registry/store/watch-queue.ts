/**
 * The bounded per-watcher event buffer shared by both stores. Writers push without ever waiting; a watcher that
 * lets the buffer fill is failed with `ResourceExhausted` (after it has read what was buffered), so a slow consumer
 * never blocks writers or other watchers and never silently misses an event.
 */
import { Code, StatusError } from "@nsm-ts/base/status";

/** A bounded FIFO with one async reader, shared by the stores (internal). */
export class WatchQueue<E> {
  private items: E[] = [];
  private failure: StatusError | undefined;
  private wake: (() => void) | undefined;

  constructor(
    private readonly capacity: number,
    private readonly what: string,
  ) {}

  /** Queues an event; returns false (and fails the queue) when the buffer is full, or when already closed. */
  push(e: E): boolean {
    if (this.failure !== undefined) return false;
    if (this.items.length >= this.capacity) {
      this.failure = new StatusError(
        Code.ResourceExhausted,
        `${this.what}: watcher fell ${this.capacity} events behind and was disconnected; find again to resync`,
      );
      this.notify();
      return false;
    }
    this.items.push(e);
    this.notify();
    return true;
  }

  /** Ends the queue with an error once the reader has drained what is buffered. */
  fail(err: StatusError): void {
    if (this.failure === undefined) this.failure = err;
    this.notify();
  }

  /** True once the queue overflowed or failed. */
  get failed(): boolean {
    return this.failure !== undefined;
  }

  /** Next event; undefined once `signal` aborted; throws the failure after the buffer drains. */
  async next(signal: AbortSignal): Promise<E | undefined> {
    for (;;) {
      if (signal.aborted) return undefined;
      if (this.items.length > 0) return this.items.shift();
      if (this.failure !== undefined) throw this.failure;
      await new Promise<void>((resolve) => {
        const done = (): void => {
          signal.removeEventListener("abort", done);
          this.wake = undefined;
          resolve();
        };
        this.wake = done;
        signal.addEventListener("abort", done, { once: true });
      });
    }
  }

  private notify(): void {
    this.wake?.();
  }
}
