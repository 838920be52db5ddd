/**
 * A bound on the unary calls one channel has in flight: the calls beyond it wait, in order, for a slot.
 *
 * Why: two Node peers whose HTTP/2 sessions both have more to write at once than the socket holds stall their
 * connection for good (each stops reading until its own write is done; docs/reliability.md#http2-stall-between-two-node-peers-keepalive).
 * A burst of calls is what fills the client's side: every new call sends its headers (with a token, ~0.5–1 kB) at
 * once, outside HTTP/2's flow control. With at most `DEFAULT_MAX_UNARY_CALLS` calls started and the 64 kB flow-control
 * window for message bytes, what a client has in flight stays below a unix socket's ~200 kB, so its writes finish,
 * it keeps reading, and the server's burst of answers drains. Streams are not counted: they stay open for long and
 * send little.
 */
import { Code, StatusError } from "../status/index.js";
import { canceledError } from "./errors.js";
import { neverAborted } from "./transport.js";

/** Unary calls a dialed channel runs at once by default (`DialOptions.maxUnaryCalls`). */
export const DEFAULT_MAX_UNARY_CALLS = 128;

/** Slots for the unary calls of one channel. */
export class CallSlots {
  private active = 0;
  private readonly waiting: Array<() => void> = [];

  constructor(readonly max: number) {}

  /** Calls in flight and calls waiting for a slot (tests and metrics). */
  get counts(): { active: number; waiting: number } {
    return { active: this.active, waiting: this.waiting.length };
  }

  /**
   * Runs `fn` once a slot is free. A call that waits fails `Canceled` when `signal` aborts and `DeadlineExceeded` at
   * `deadline`, without taking a slot.
   */
  async run<T>(path: string, signal: AbortSignal, deadline: Date | undefined, fn: () => Promise<T>): Promise<T> {
    if (this.active < this.max) this.active++;
    else await this.wait(path, signal, deadline);
    try {
      return await fn();
    } finally {
      // Hand the slot straight to the first waiter, so a call arriving meanwhile cannot overtake it.
      const next = this.waiting.shift();
      if (next) next();
      else this.active--;
    }
  }

  private wait(path: string, signal: AbortSignal, deadline: Date | undefined): Promise<void> {
    return new Promise((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const leave = (err: StatusError): void => {
        const i = this.waiting.indexOf(take);
        if (i >= 0) this.waiting.splice(i, 1);
        done();
        reject(err);
      };
      const onAbort = (): void => leave(canceledError(signal, path));
      const done = (): void => {
        if (timer) clearTimeout(timer);
        if (signal !== neverAborted) signal.removeEventListener("abort", onAbort);
      };
      const take = (): void => {
        done();
        resolve();
      };
      if (signal.aborted) return reject(canceledError(signal, path));
      if (signal !== neverAborted) signal.addEventListener("abort", onAbort, { once: true });
      if (deadline) {
        const msg = `${path}: deadline exceeded while waiting for one of the channel's ${this.max} call slots`;
        timer = setTimeout(() => leave(new StatusError(Code.DeadlineExceeded, msg)), Math.max(0, deadline.getTime() - Date.now()));
      }
      this.waiting.push(take);
    });
  }
}
