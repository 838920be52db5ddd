/**
 * One bounded, single-consumer async queue for every push-to-pull bridge: producers push from event handlers
 * without awaiting, the consumer pulls with `for await` or `take(signal)`. What a full queue does is the
 * caller's choice. "pause" keeps the item and tells the producer to wait for space (backpressure, for message
 * streams that can pause). An error function drops the item and ends the queue with that error once the
 * consumer has read what is buffered, for watchers that must neither block their writers nor silently miss
 * an event.
 */

/** At capacity: keep the item and ask the producer to pause, or end the queue with the returned error. */
export type Overflow = "pause" | (() => unknown);

/** Options of `AsyncQueue`. */
export interface AsyncQueueOptions {
  /** Items buffered (not yet handed to the consumer) at which the queue is full; default 16. */
  capacity?: number;
  /** What a push into a full queue does; default "pause". */
  overflow?: Overflow;
  /** Called when the buffer drops back below capacity (resume the producer). */
  onSpace?: () => void;
  /** Called once when the consumer stops early (`break`, `return()`), e.g. to cancel the call. */
  onReturn?: () => void;
}

/** A pending pull: an item handed straight to it, or word that the queue ended. */
interface Waiter<T> {
  item(value: T): void;
  end(): void;
}

/** Async iterable queue: `push` from event handlers, `for await` (or `take`) in the consumer. */
export class AsyncQueue<T> implements AsyncIterableIterator<T> {
  private items: T[] = [];
  private waiter: Waiter<T> | undefined;
  private done = false;
  private failure: { err: unknown } | undefined;
  private spaceWaiters: Array<() => void> = [];
  private readonly capacity: number;
  private readonly overflow: Overflow;
  private readonly onSpace: (() => void) | undefined;
  private readonly onReturn: (() => void) | undefined;

  constructor(opts: AsyncQueueOptions = {}) {
    this.capacity = opts.capacity ?? 16;
    if (!(this.capacity >= 1)) throw new RangeError(`queue: capacity must be at least 1, got ${this.capacity}`);
    this.overflow = opts.overflow ?? "pause";
    this.onSpace = opts.onSpace;
    this.onReturn = opts.onReturn;
  }

  /** Number of buffered items. */
  get size(): number {
    return this.items.length;
  }

  /** True once the queue ended: cleanly, with an error, by overflow, or by the consumer leaving. */
  get ended(): boolean {
    return this.done || this.failure !== undefined;
  }

  /**
   * Adds an item; false means "stop pushing": with "pause" the queue is full (the item is kept; wait for space),
   * with an error overflow the item was dropped because the queue overflowed or had ended. Items pushed after
   * the end are dropped.
   */
  push(item: T): boolean {
    if (this.ended) return this.overflow === "pause";
    const w = this.waiter;
    if (w) {
      this.waiter = undefined;
      w.item(item);
      return true;
    }
    if (this.overflow === "pause") {
      this.items.push(item);
      return this.items.length < this.capacity;
    }
    if (this.items.length >= this.capacity) {
      this.end(this.overflow());
      return false;
    }
    this.items.push(item);
    return true;
  }

  /** Resolves when there is room again (or the queue has ended). */
  waitForSpace(): Promise<void> {
    if (this.items.length < this.capacity || this.ended) return Promise.resolve();
    return new Promise((resolve) => this.spaceWaiters.push(resolve));
  }

  /** Ends the stream: cleanly, or with an error the consumer sees after the buffered items. Later ends are ignored. */
  end(err?: unknown): void {
    if (this.ended) return;
    if (err === undefined) this.done = true;
    else this.failure = { err };
    const w = this.waiter;
    if (w && this.items.length === 0) {
      this.waiter = undefined;
      w.end();
    }
    this.releaseSpace();
  }

  next(): Promise<IteratorResult<T>> {
    if (this.items.length > 0) return Promise.resolve({ value: this.shift(), done: false });
    if (this.failure) return Promise.reject(this.takeFailure());
    if (this.done) return Promise.resolve({ value: undefined, done: true });
    return new Promise((resolve, reject) => {
      this.waiter = {
        item: (value) => resolve({ value, done: false }),
        end: () => (this.failure ? reject(this.failure.err) : resolve({ value: undefined, done: true })),
      };
    });
  }

  /**
   * The next item; undefined once `signal` aborted (even with items left) or the queue ended cleanly; throws the
   * queue's error once the buffered items are read.
   */
  async take(signal: AbortSignal): Promise<T | undefined> {
    for (;;) {
      if (signal.aborted) return undefined;
      if (this.items.length > 0) return this.shift();
      if (this.failure) throw this.failure.err;
      if (this.done) return undefined;
      const handed = await this.wait(signal);
      if (handed !== undefined && !signal.aborted) return handed.value;
    }
  }

  return(): Promise<IteratorResult<T>> {
    const early = !this.ended;
    this.done = true;
    this.failure = undefined;
    this.items = [];
    this.releaseSpace();
    if (early) this.onReturn?.();
    return Promise.resolve({ value: undefined, done: true });
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<T> {
    return this;
  }

  private shift(): T {
    const value = this.items.shift() as T;
    if (this.items.length < this.capacity) this.releaseSpace();
    return value;
  }

  /** The error for a `next()` that finds it buffered: reported once, then the queue reports its end. */
  private takeFailure(): unknown {
    const err = this.failure?.err;
    this.failure = undefined;
    this.done = true;
    return err;
  }

  /** Resolves with an item handed over, or undefined when the queue ended or `signal` aborted. */
  private wait(signal: AbortSignal): Promise<{ value: T } | undefined> {
    return new Promise((resolve) => {
      const onAbort = (): void => {
        if (this.waiter === w) this.waiter = undefined;
        resolve(undefined);
      };
      const w: Waiter<T> = {
        item: (value) => {
          signal.removeEventListener("abort", onAbort);
          resolve({ value });
        },
        end: () => {
          signal.removeEventListener("abort", onAbort);
          resolve(undefined);
        },
      };
      this.waiter = w;
      signal.addEventListener("abort", onAbort, { once: true });
    });
  }

  private releaseSpace(): void {
    if (this.spaceWaiters.length > 0) {
      const ws = this.spaceWaiters;
      this.spaceWaiters = [];
      for (const w of ws) w();
    }
    this.onSpace?.();
  }
}
