/**
 * `watch connections`: reads an nsmgr's MonitorConnections stream for as long as the operator watches, and opens
 * it again when the session is lost (GOAWAY, a transport error, an nsmgr restart) or the nsmgr ends it (it
 * ends a watcher that fell behind), instead of ending the command. Each new stream starts with a fresh state
 * transfer, which is printed as such. Errors that another try would not fix (PermissionDenied, Unimplemented,
 * InvalidArgument…) end the command as before.
 */
import type { ConnectionEvent } from "@nsm-ts/api/networkservice";
import type { Clock } from "@nsm-ts/base/clock";
import type { Logger } from "@nsm-ts/base/log";
import { Code, isStatusError } from "@nsm-ts/base/status";

/** Failures after which the stream is opened again. */
const TRANSIENT = [Code.Unavailable, Code.ResourceExhausted, Code.Aborted, Code.Internal, Code.Unknown, Code.DeadlineExceeded];

/** How `watchConnectionEvents` waits and logs. */
export interface WatchOptions {
  signal: AbortSignal;
  log: Logger;
  clock: Clock;
  /** First wait before reopening; doubles per failure without a state transfer. Default 200 ms. */
  minRetryDelayMs?: number;
  /** Cap of the doubling wait; default 5 000 ms. */
  maxRetryDelayMs?: number;
}

/**
 * Feeds every event of `open()` to `onEvent` until `opts.signal` aborts, opening the stream again after a
 * transient failure or an end; resolves when aborted, rejects with a failure that another try would not fix.
 */
export async function watchConnectionEvents(
  open: (signal: AbortSignal) => AsyncIterable<ConnectionEvent>,
  onEvent: (ev: ConnectionEvent) => void,
  opts: WatchOptions,
): Promise<void> {
  const min = opts.minRetryDelayMs ?? 200;
  const max = opts.maxRetryDelayMs ?? 5_000;
  let delay = min;
  for (;;) {
    let why: unknown;
    try {
      for await (const ev of open(opts.signal)) {
        // A stream that delivered its state transfer worked: the next loss starts the backoff afresh.
        delay = min;
        onEvent(ev);
      }
    } catch (err) {
      if (opts.signal.aborted) return;
      if (!TRANSIENT.some((code) => isStatusError(err, code))) throw err;
      why = err;
    }
    if (opts.signal.aborted) return;
    opts.log.warn({ err: why, retryInMs: delay }, "watch connections: the monitor stream ended; opening it again");
    try {
      await opts.clock.sleep(delay, opts.signal);
    } catch {
      return;
    }
    delay = Math.min(delay * 2, max);
  }
}
