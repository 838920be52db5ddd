/**
 * The chain's link to tracing: with tracing on, the server call's span (and then each element's span) rides in
 * the CallContext under `traceKey`, so element spans nest and `connect` makes the next hop's call a child.
 * Without tracing the key is absent and the chain skips all of it.
 */
import { type ActiveTrace, endChildSpan, injectTrace, startChildSpan } from "../tracing/index.js";
import { type CallContext, ContextKey } from "./context.js";

/** The active span of a call when tracing is on (set from the tracing server interceptor's span). */
export const traceKey = new ContextKey<ActiveTrace>("trace");

/** Runs `fn` in a child span named `name` of the context's trace; `fn` gets the context carrying that span. */
export async function inSpan<R>(ctx: CallContext, t: ActiveTrace, name: string, fn: (ctx: CallContext) => Promise<R>): Promise<R> {
  const { span, trace } = startChildSpan(t, name);
  try {
    const r = await fn(ctx.with(traceKey, trace));
    endChildSpan(span);
    return r;
  } catch (err) {
    endChildSpan(span, err);
    throw err;
  }
}

/** Adds the context's `traceparent` to outgoing metadata (no-op without tracing); used by connect elements. */
export function traceMetadata(ctx: CallContext, metadata: Record<string, string>): Record<string, string> {
  const t = ctx.value(traceKey);
  if (t) injectTrace(t, metadata);
  return metadata;
}
