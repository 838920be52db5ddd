/**
 * timeout (server): closes a connection whose caller stopped refreshing it. Every Request arms a timer at
 * the previous path segment's `expires` minus the incoming call's remaining time (its request timeout), so
 * the connection is closed before the caller's token runs out; a successful refresh re-arms it, a failed
 * one keeps the old timer, Close stops it. The close runs through begin's EventFactory, serialised with
 * everything else on the connection.
 *
 * Reads: `path.path_segments[index-1].expires` (written by the previous hop or by updatetoken from the
 * incoming token), `ctx.deadline`, `ctx.clock`. Writes: its timer in `ctx.metadata.server`.
 * Placement: after `begin` and `metadata` (it needs the EventFactory and per-connection state), and after
 * `updatetoken` (which fills the previous segment's expiry).
 */
import type { NetworkServiceRequest } from "@nsm-ts/api/networkservice";
import type { Timer } from "@nsm-ts/base/clock";
import type { CallContext } from "@nsm-ts/base/context";
import { MetaKey } from "@nsm-ts/base/context";
import { timestampMs } from "@nsm-ts/base/limits";
import { Code, fail } from "@nsm-ts/base/status";
import type { NetworkServiceServer } from "../../core/types.js";
import { eventFactoryOf } from "../begin/index.js";

const ELEMENT = "timeout";

/** The armed expiry of one connection. */
interface Armed {
  timer: Timer;
  /** Aborted when this timer is replaced or stopped, so a close it already queued is skipped. */
  cancel: AbortController;
  /** Unhooks the timer from the connection's lifetime signal. */
  ended: () => void;
}

const armedKey = new MetaKey<Armed>("timeout.armed");

/** Options of the timeout server. */
export interface TimeoutOptions {
  /**
   * Request timeout assumed when the incoming call has no deadline; default 0 ms (close exactly at the
   * previous segment's expiry, as upstream does without a deadline).
   */
  defaultRequestTimeoutMs?: number;
}

function previousExpiry(req: NetworkServiceRequest): number {
  const path = req.connection?.path;
  const index = path?.index ?? 0;
  const prev = index > 0 ? path?.pathSegments[index - 1] : undefined;
  const expires = prev?.expires;
  if (!expires) {
    fail(
      Code.InvalidArgument,
      `${ELEMENT}: expiration for the previous path segment cannot be nil (path.path_segments[${index - 1}].expires)`,
    );
  }
  return timestampMs(ELEMENT, `path.path_segments[${index - 1}].expires`, expires);
}

/** One reason for every replaced timer: `abort()` without one builds a DOMException (with a stack) per refresh. */
const REPLACED = new Error(`${ELEMENT}: expiry timer replaced or stopped`);

function disarm(ctx: CallContext): void {
  const old = ctx.metadata.server.delete(armedKey);
  if (old) {
    old.timer.stop();
    old.cancel.abort(REPLACED);
    old.ended();
  }
}

/** Creates the timeout server element. */
export function newServer(opts: TimeoutOptions = {}): NetworkServiceServer {
  return {
    name: ELEMENT,
    async request(ctx, req, next) {
      const factory = eventFactoryOf(ctx, ELEMENT);
      const expiresMs = previousExpiry(req);
      const requestTimeoutMs = ctx.remainingMs() ?? opts.defaultRequestTimeoutMs ?? 0;
      const conn = await next.request(ctx, req);
      // Only a successful Request replaces the timer: after a failed refresh the old deadline still holds.
      disarm(ctx);
      const at = expiresMs - Math.max(0, requestTimeoutMs);
      const cancel = new AbortController();
      const log = ctx.log;
      const id = conn.id;
      const timer = ctx.clock.setTimer(at - ctx.clock.now(), () => {
        log.info({ connId: id, expiredAt: new Date(expiresMs).toISOString() }, `${ELEMENT}: caller stopped refreshing, closing`);
        factory.close({ signal: cancel.signal }).catch((err: unknown) => {
          log.warn({ connId: id, err }, `${ELEMENT}: close of the expired connection failed`);
        });
      });
      // A connection that ends otherwise (its chain disposed: begin's lifetime) takes its timer with it.
      const stop = (): void => {
        timer.stop();
      };
      factory.signal.addEventListener("abort", stop, { once: true });
      const ended = (): void => factory.signal.removeEventListener("abort", stop);
      ctx.metadata.server.set(armedKey, { timer, cancel, ended });
      return conn;
    },
    async close(ctx, conn, next) {
      try {
        await next.close(ctx, conn);
      } finally {
        disarm(ctx);
      }
    },
  };
}
