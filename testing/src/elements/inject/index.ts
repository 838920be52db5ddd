/**
 * inject: test helper elements that fail on chosen calls (error injection) or run a hook (e.g. to change
 * the clock or the context) before passing on.
 */

import type { CallContext } from "@nsm-ts/base/context";
import { Code, StatusError } from "@nsm-ts/base/status";
import type { NetworkServiceElement } from "@nsm-ts/sdk/networkservice";

/** Which calls fail: a predicate on the 0-based call number, or a list of call numbers; default every call. */
export type FailOn = ((n: number) => boolean) | readonly number[];

/** Options of the error-injecting element. */
export interface InjectErrorOptions {
  /** Request calls that fail; default all. Use [] for none. */
  requestFailOn?: FailOn;
  /** Close calls that fail; default none. */
  closeFailOn?: FailOn;
  /** The error to throw; default StatusError(Unavailable, "inject: injected error"). */
  error?: () => Error;
}

function matcher(f: FailOn | undefined, dflt: boolean): (n: number) => boolean {
  if (f === undefined) return () => dflt;
  if (typeof f === "function") return f;
  const set = new Set(f);
  return (n) => set.has(n);
}

/** An element that throws on the selected Request/Close calls and passes the others on. */
export function newErrorElement(opts: InjectErrorOptions = {}): NetworkServiceElement {
  const failReq = matcher(opts.requestFailOn, true);
  const failClose = matcher(opts.closeFailOn, false);
  const err = opts.error ?? (() => new StatusError(Code.Unavailable, "inject: injected error"));
  let r = 0;
  let c = 0;
  return {
    name: "inject-error",
    async request(ctx, req, next) {
      if (failReq(r++)) throw err();
      return next.request(ctx, req);
    },
    async close(ctx, conn, next) {
      if (failClose(c++)) {
        await next.close(ctx, conn).catch(() => undefined);
        throw err();
      }
      return next.close(ctx, conn);
    },
  };
}

/** An element that maps the context before passing on (inject a clock, a deadline, a value, a peer). */
export function newContextElement(map: (ctx: CallContext) => CallContext): NetworkServiceElement {
  return {
    name: "inject-context",
    request: (ctx, req, next) => next.request(map(ctx), req),
    close: (ctx, conn, next) => next.close(map(ctx), conn),
  };
}
