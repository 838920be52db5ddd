/**
 * A single-consumer async queue bridging grpc-js's push-style events to pull-style async iteration, with a
 * high-water mark so producers can pause (backpressure) instead of buffering without bound.
 */

type Waiter<T> = { resolve: (r: IteratorResult<T>) => void; reject: (e: unknown) => void };

/** Async iterable queue: `push` from event handlers, `for await` in the consumer. */
export class AsyncQueue<T> implements AsyncIterableIterator<T> {
  private items: T[] = [];
  private waiter: Waiter<T> | undefined;
  private done = false;
  private failure: { err: unknown } | undefined;
  private spaceWaiters: Array<() => void> = [];

  /**
   * @param highWaterMark above this many buffered items `push` returns false and `waitForSpace` blocks.
   * @param onSpace called when the buffer drops back below the mark (resume the producer).
   * @param onReturn called once when the consumer stops early (`break`, `return()`), e.g. to cancel the call.
   */
  constructor(
    private readonly highWaterMark = 16,
    private readonly onSpace?: () => void,
    private readonly onReturn?: () => void,
  ) {}

  /** Number of buffered items. */
  get size(): number {
    return this.items.length;
  }

  /** Adds an item; false means "over the high-water mark, pause". Ignored after the end. */
  push(item: T): boolean {
    if (this.done || this.failure) return true;
    const w = this.waiter;
    if (w) {
      this.waiter = undefined;
      w.resolve({ value: item, done: false });
      return true;
    }
    this.items.push(item);
    return this.items.length < this.highWaterMark;
  }

  /** Resolves when there is room again (or the queue has ended). */
  waitForSpace(): Promise<void> {
    if (this.items.length < this.highWaterMark || this.done || this.failure) return Promise.resolve();
    return new Promise((resolve) => this.spaceWaiters.push(resolve));
  }

  /** Ends the stream: cleanly, or with an error the consumer sees after the buffered items. */
  end(err?: unknown): void {
    if (this.done || this.failure) return;
    if (err === undefined) this.done = true;
    else this.failure = { err };
    const w = this.waiter;
    if (w && this.items.length === 0) {
      this.waiter = undefined;
      if (this.failure) w.reject(this.failure.err);
      else w.resolve({ value: undefined, done: true });
    }
    this.releaseSpace();
  }

  next(): Promise<IteratorResult<T>> {
    if (this.items.length > 0) {
      const value = this.items.shift() as T;
      if (this.items.length < this.highWaterMark) this.releaseSpace();
      return Promise.resolve({ value, done: false });
    }
    if (this.failure) {
      const { err } = this.failure;
      this.failure = undefined;
      this.done = true;
      return Promise.reject(err);
    }
    if (this.done) return Promise.resolve({ value: undefined, done: true });
    return new Promise((resolve, reject) => {
      this.waiter = { resolve, reject };
    });
  }

  return(): Promise<IteratorResult<T>> {
    const early = !this.done && !this.failure;
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

  private releaseSpace(): void {
    if (this.spaceWaiters.length > 0) {
      const ws = this.spaceWaiters;
      this.spaceWaiters = [];
      for (const w of ws) w();
    }
    this.onSpace?.();
  }
}
