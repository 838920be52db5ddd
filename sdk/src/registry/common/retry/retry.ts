/**
 * retry (registry client): a Register, Unregister or Find that fails with a transient code (Unavailable, a
 * deadline, …) is tried again every `intervalMs` on `ctx.clock` until `tryTimeoutMs` has passed, the call's own
 * deadline would pass before the next attempt, or the caller cancels; errors about the request itself (InvalidArgument, PermissionDenied, …) are returned at once. A Find is
 * retried only until it has delivered its first result. Place after `begin`.
 */
import type { CallContext } from "@nsm-ts/base/context";
import { isRetryable } from "@nsm-ts/base/status";

/** Re-exported: the retry decision is shared by every client that retries. */
export { isRetryable };

import type { FindResult, RegistryElement, RegistryEntry } from "../../core/index.js";

/** Options of `retry.newClient`. */
export interface RetryOptions {
  /** Delay between attempts; default 1 000 ms. */
  intervalMs?: number;
  /** Give up (returning the last error) once this much time has passed since the first attempt; default 15 000 ms. */
  tryTimeoutMs?: number;
}

/** Creates the client element (see the header comment). */
export function newClient<T extends RegistryEntry>(opts: RetryOptions = {}): RegistryElement<T> {
  const intervalMs = opts.intervalMs ?? 1000;
  const tryTimeoutMs = opts.tryTimeoutMs ?? 15_000;
  // No attempt starts after the budget or the call's deadline: a shutdown's short unregister must not wait 15 s.
  const giveUp = (ctx: CallContext, start: number, err: unknown): boolean => {
    const next = ctx.clock.now() + intervalMs;
    return ctx.signal.aborted || !isRetryable(err) || next - start > tryTimeoutMs || (ctx.deadline !== undefined && next >= ctx.deadline);
  };
  const attempt = async <R>(ctx: CallContext, fn: () => Promise<R>): Promise<R> => {
    const start = ctx.clock.now();
    for (;;) {
      try {
        return await fn();
      } catch (err) {
        if (giveUp(ctx, start, err)) throw err;
        ctx.log.debug({ element: "retry", err }, "call failed; retrying");
        await ctx.clock.sleep(intervalMs, ctx.signal);
      }
    }
  };
  return {
    name: "retry",
    register: (ctx, entry, next) => attempt(ctx, () => next.register(ctx, entry)),
    async *find(ctx, query, next): AsyncIterable<FindResult<T>> {
      const start = ctx.clock.now();
      for (;;) {
        let delivered = false;
        try {
          for await (const r of next.find(ctx, query)) {
            delivered = true;
            yield r;
          }
          return;
        } catch (err) {
          if (delivered || giveUp(ctx, start, err)) throw err;
          await ctx.clock.sleep(intervalMs, ctx.signal);
        }
      }
    },
    unregister: (ctx, entry, next) => attempt(ctx, () => next.unregister(ctx, entry)),
  };
}
