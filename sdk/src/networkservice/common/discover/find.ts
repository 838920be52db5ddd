/**
 * Registry look-ups for the discovery elements: read a Find to the end, and, when nothing acceptable is
 * registered yet, keep a watch open until something is or the wait ends (upstream discovers endpoints that
 * register after the request started).
 */

import type { CallContext } from "@nsm-ts/base/context";
import { Code, fail, isRetryable, StatusError, toStatusError } from "@nsm-ts/base/status";
import type { FindResult, RegistryEntry, RegistryHandler } from "../../../registry/core/index.js";

/** Reads every result of a (non-watch) Find, dropping deletions. */
export async function collect<T extends RegistryEntry>(results: AsyncIterable<FindResult<T>>): Promise<T[]> {
  const out: T[] = [];
  for await (const r of results) if (!r.deleted) out.push(r.entry);
  return out;
}

/**
 * Finds entries matching `template`, passes the current set to `evaluate`, and returns its first defined
 * result. When the initial list gives none and `waitMs` > 0, watches the registry (up to `waitMs` on
 * `ctx.clock`, or until `ctx.signal` aborts) and re-evaluates the set after every event. Undefined when
 * nothing acceptable turned up in time.
 */
export async function findUntil<T extends RegistryEntry, R>(
  registry: RegistryHandler<T>,
  ctx: CallContext,
  template: T,
  evaluate: (current: T[]) => R | undefined,
  waitMs: number,
): Promise<R | undefined> {
  if (ctx.signal.aborted) fail(Code.Canceled, "discover: request canceled");
  const current = new Map<string, T>();
  for (const e of await collect(registry.find(ctx, { template, watch: false }))) current.set(e.name, e);
  const first = evaluate([...current.values()]);
  if (first !== undefined || !(waitMs > 0)) return first;

  const ac = new AbortController();
  const stop = (): void => ac.abort();
  ctx.signal.addEventListener("abort", stop, { once: true });
  const timer = ctx.clock.setTimer(waitMs, stop);
  const aborted = new Promise<"aborted">((resolve) => ac.signal.addEventListener("abort", () => resolve("aborted"), { once: true }));
  const it = registry.find(ctx.withSignal(ac.signal), { template, watch: true })[Symbol.asyncIterator]();
  try {
    for (;;) {
      const pending = it.next();
      // If the abort wins the race, this next() may still reject later (a cancelled stream): never unhandled.
      pending.catch(() => undefined);
      const step = await Promise.race([pending, aborted]);
      if (step === "aborted" || step.done) return undefined;
      if (step.value.deleted) current.delete(step.value.entry.name);
      else current.set(step.value.entry.name, step.value.entry);
      const r = evaluate([...current.values()]);
      if (r !== undefined) return r;
    }
  } finally {
    timer.stop();
    ctx.signal.removeEventListener("abort", stop);
    ac.abort();
    // Not awaited: a watch blocked in its next() ends on the abort above; return() then just cleans up.
    void it.return?.()?.catch(() => undefined);
  }
}

/** How long a discovery element may wait for registrations: until the deadline, or `fallbackMs` without one. */
export function waitBudgetMs(ctx: CallContext, fallbackMs: number): number {
  const r = ctx.remainingMs();
  return r === undefined ? fallbackMs : Math.max(0, r);
}

/**
 * The caller's own end, if it came: `DeadlineExceeded` once the call's deadline (on `ctx.clock`) has passed or its
 * signal aborted (the abort's status when it is `Canceled`). Candidate loops check it after a failure, so an
 * attempt that failed because the caller ran out of time is not blamed on the forwarder or endpoint.
 */
export function callerGone(ctx: CallContext, element: string, cause?: unknown): StatusError | undefined {
  const reason: unknown = ctx.signal.aborted ? ctx.signal.reason : undefined;
  if (reason instanceof StatusError && reason.code === Code.Canceled) return reason;
  const remaining = ctx.remainingMs();
  if (!ctx.signal.aborted && (remaining === undefined || remaining > 0)) return undefined;
  return new StatusError(Code.DeadlineExceeded, `${element}: the caller's deadline passed`, cause === undefined ? {} : { cause });
}

/**
 * Trailer that marks a status as the registry's failure, not the next hop's: a hop whose discovery could not ask the
 * registry sends it with its status, `connect` hands it back with the next hop's error, and failover does not take
 * such an error for a dead forwarder or endpoint (docs/wire-compatibility.md#registry-failure-trailer).
 */
export const REGISTRY_FAILURE_TRAILER = "nsmts-failed-at";
const REGISTRY = "registry";

/**
 * Value of `REGISTRY_FAILURE_TRAILER` when an nsmgr could reach none of its forwarders: the Request never got to an
 * endpoint, so choosing another endpoint would not help (heal does not count such attempts toward its reselect).
 */
const FORWARDERS = "forwarder";

/** True when `err` says no forwarder of an nsmgr could be reached (`forwardersUnreachable`). */
export function isForwarderFailure(err: unknown): boolean {
  return err instanceof StatusError && err.metadata[REGISTRY_FAILURE_TRAILER] === FORWARDERS;
}

/** The `Unavailable` of an nsmgr that reached none of its forwarders, marked so (see `isForwarderFailure`). */
export function forwardersUnreachable(message: string, causes: readonly unknown[]): StatusError {
  return new StatusError(Code.Unavailable, message, {
    cause: new AggregateError([...causes], "discoverforwarder: candidate failures"),
    metadata: { [REGISTRY_FAILURE_TRAILER]: FORWARDERS },
  });
}

/** True when `err` says the registry could not answer (here or at a later hop), not that a next hop failed. */
export function isRegistryFailure(err: unknown): boolean {
  return err instanceof StatusError && err.metadata[REGISTRY_FAILURE_TRAILER] === REGISTRY;
}

/** The `REGISTRY_FAILURE_TRAILER` mark of `err` (registry or forwarder failure; empty for any other error), for an error wrapping it. */
export function failedAtMetadata(err: unknown): Record<string, string> {
  const at = err instanceof StatusError ? err.metadata[REGISTRY_FAILURE_TRAILER] : undefined;
  return at === REGISTRY || at === FORWARDERS ? { [REGISTRY_FAILURE_TRAILER]: at } : {};
}

/**
 * The error of a registry look-up that failed: `Unavailable` (the refusal's own code when the registry refused the
 * call) with a message naming the registry and what was looked up, marked with `REGISTRY_FAILURE_TRAILER`.
 */
export function registryFailure(element: string, what: string, err: unknown): StatusError {
  if (isRegistryFailure(err)) return err as StatusError;
  const code = isRetryable(err) ? Code.Unavailable : toStatusError(err).code;
  const msg = err instanceof Error ? err.message : String(err);
  return new StatusError(code, `${element}: the registry cannot answer ${what}: ${msg}`, {
    cause: err,
    metadata: { [REGISTRY_FAILURE_TRAILER]: REGISTRY },
  });
}

/**
 * Runs a registry look-up; its failure becomes the caller's end when the caller is gone (`callerGone`), else a
 * `registryFailure`.
 */
export async function askRegistry<R>(ctx: CallContext, element: string, what: string, lookup: () => Promise<R>): Promise<R> {
  try {
    return await lookup();
  } catch (err) {
    throw callerGone(ctx, element, err) ?? registryFailure(element, what, err);
  }
}

/** Codes that say the request itself was refused, not that the candidate is unwell. */
const REFUSALS = new Set<Code>([Code.PermissionDenied, Code.Unauthenticated, Code.InvalidArgument, Code.FailedPrecondition]);

/**
 * The error of a candidate loop whose every attempt failed: `Unavailable` naming each failure, unless every
 * candidate refused the request with the same code (say, each endpoint's authorize answered PermissionDenied) —
 * then that code, so the client learns the refusal and does not retry it as an outage.
 */
export function allCandidatesFailed(message: string, causes: readonly unknown[], element: string): StatusError {
  const codes = new Set(causes.map((c) => (c instanceof StatusError ? c.code : Code.Unknown)));
  const [only] = codes;
  const code = codes.size === 1 && only !== undefined && REFUSALS.has(only) ? only : Code.Unavailable;
  // Every candidate failed because the registry could not answer further on: still the registry's failure.
  const metadata = causes.length > 0 && causes.every(isRegistryFailure) ? failedAtMetadata(causes[0]) : {};
  return new StatusError(code, message, { cause: new AggregateError([...causes], `${element}: candidate failures`), metadata });
}
