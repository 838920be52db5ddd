/**
 * retry (client): a Request that fails with a transient error (Unavailable, DeadlineExceeded, …) is tried
 * again every `intervalMs` on `ctx.clock` until the call's deadline, `tryTimeoutMs` or the caller's signal
 * ends it; errors about the request itself (InvalidArgument, PermissionDenied, …) come back at once. Each
 * attempt gets a fresh copy of the caller's request, because the elements after retry edit it in place.
 * Close passes through: `begin` tries a transiently failed Close once more while it still holds the
 * connection's state (a retry here, before begin, would find that state gone and send nothing); beyond that
 * Close is best effort and the servers' timeouts clean up what it could not reach.
 *
 * Reads: `ctx.deadline`, `ctx.signal`, `ctx.clock`. Placement: first in a client chain (it wraps the
 * whole chain, as upstream's retry wraps a client); refresh and heal events enter at begin and do their
 * own retrying.
 */
import { clone } from "@bufbuild/protobuf";
import { NetworkServiceRequestSchema } from "@nsm-ts/api/networkservice";
import type { CallContext } from "@nsm-ts/base/context";
import { isRetryable } from "@nsm-ts/base/status";
import type { NetworkServiceClient } from "../../core/types.js";

/** Re-exported: the retry decision is shared by every client that retries. */
export { isRetryable };

const ELEMENT = "retry";

/** Options of the retry client. */
export interface RetryOptions {
  /** Delay between attempts; default 200 ms (upstream's interval). */
  intervalMs?: number;
  /** Stop retrying once this much time has passed since the first attempt; default 15 000 ms. */
  tryTimeoutMs?: number;
}

/** Whether one more attempt after `intervalMs` still fits the call's deadline and the retry budget. */
function mayRetry(ctx: CallContext, err: unknown, startedAt: number, intervalMs: number, tryTimeoutMs: number): boolean {
  if (ctx.signal.aborted || !isRetryable(err)) return false;
  const at = ctx.clock.now() + intervalMs;
  if (at - startedAt > tryTimeoutMs) return false;
  return ctx.deadline === undefined || at < ctx.deadline;
}

/** Waits `ms` on the context's clock; false when the caller aborted meanwhile. */
async function pause(ctx: CallContext, ms: number): Promise<boolean> {
  try {
    await ctx.clock.sleep(ms, ctx.signal);
    return true;
  } catch {
    return false;
  }
}

/** Creates the retry client element. */
export function newClient(opts: RetryOptions = {}): NetworkServiceClient {
  const intervalMs = opts.intervalMs ?? 200;
  const tryTimeoutMs = opts.tryTimeoutMs ?? 15_000;
  return {
    name: ELEMENT,
    async request(ctx, req, next) {
      const startedAt = ctx.clock.now();
      for (let attempt = 1; ; attempt++) {
        try {
          return await next.request(ctx, clone(NetworkServiceRequestSchema, req));
        } catch (err) {
          if (!mayRetry(ctx, err, startedAt, intervalMs, tryTimeoutMs)) throw err;
          ctx.log.warn(
            { element: ELEMENT, connId: req.connection?.id, attempt, err, retryInMs: intervalMs },
            `${ELEMENT}: request failed, retrying`,
          );
          if (!(await pause(ctx, intervalMs))) throw err;
        }
      }
    },
    close: (ctx, conn, next) => next.close(ctx, conn),
  };
}
