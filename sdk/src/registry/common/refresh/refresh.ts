/**
 * refresh (registry client): keeps an endpoint registered by registering it again at ⅔ of the time left until
 * the expiration the registry returned, on `ctx.clock`. A refresh that fails is retried every `retryIntervalMs`
 * until that expiration passes. Unregister (or the lifetime `signal`) stops it. When the original request asked
 * for an expiration, each refresh asks for the same duration from the refresh time. Network services (no
 * expiration) are not refreshed. Place after `begin` and `retry`, before `updatepath` and `connect`.
 */
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import type { Timer } from "@nsm-ts/base/clock";
import type { CallContext } from "@nsm-ts/base/context";
import { timestampMs } from "@nsm-ts/base/limits";
import type { RegistryElement, RegistryEntry, RegistryHandler } from "../../core/index.js";
import { cloneEntry, isEndpoint } from "../entry.js";
import { pathKey } from "../grpcmetadata/index.js";

/** Options of `refresh.newClient`. */
export interface RefreshOptions {
  /** Delay between attempts after a failed refresh; default 200 ms. */
  retryIntervalMs?: number;
  /** Stops every refresh when aborted (the owner's lifetime). */
  signal?: AbortSignal;
}

interface State {
  ac: AbortController;
  timer: Timer | undefined;
  inflight: Promise<unknown> | undefined;
}

/** Creates the client element (see the header comment). */
export function newClient<T extends RegistryEntry>(opts: RefreshOptions = {}): RegistryElement<T> {
  const retryMs = opts.retryIntervalMs ?? 200;
  const states = new Map<string, State>();

  const stop = async (name: string): Promise<void> => {
    const s = states.get(name);
    if (s === undefined) return;
    states.delete(name);
    s.ac.abort();
    s.timer?.stop();
    await s.inflight?.catch(() => undefined);
  };
  opts.signal?.addEventListener("abort", () => {
    for (const name of [...states.keys()]) void stop(name);
  });

  const start = (ctx: CallContext, request: T, result: T, next: RegistryHandler<T>): void => {
    if (!isEndpoint(result) || result.expirationTime === undefined || opts.signal?.aborted) return;
    const clock = ctx.clock;
    const requested =
      isEndpoint(request) && request.expirationTime !== undefined
        ? timestampMs("refresh", "expiration_time", request.expirationTime) - clock.now()
        : undefined;
    const state: State = { ac: new AbortController(), timer: undefined, inflight: undefined };
    states.set(result.name, state);
    // Background calls get their own lifetime and a fresh path: the caller's context ends with its call.
    const bg = ctx.without(pathKey).withSignal(state.ac.signal).withDeadline(undefined);
    let expiresAt = timestampMs("refresh", "expiration_time", result.expirationTime);

    const arm = (delayMs: number): void => {
      state.timer = clock.setTimer(delayMs, fire);
    };
    const fire = (): void => {
      state.timer = undefined;
      if (state.ac.signal.aborted) return;
      const req = cloneEntry(request);
      if (isEndpoint(req)) req.expirationTime = requested === undefined ? undefined : timestampFromMs(clock.now() + requested);
      const p = next.register(bg, req).then(
        (res) => {
          if (state.ac.signal.aborted) return;
          if (isEndpoint(res) && res.expirationTime !== undefined) {
            expiresAt = timestampMs("refresh", "expiration_time", res.expirationTime);
            arm(((expiresAt - clock.now()) * 2) / 3);
          }
        },
        (err: unknown) => {
          if (state.ac.signal.aborted) return;
          if (clock.now() + retryMs < expiresAt) {
            ctx.log.warn({ element: "refresh", name: request.name, err }, "refresh failed; retrying");
            arm(retryMs);
          } else {
            ctx.log.warn({ element: "refresh", name: request.name, err }, "refresh failed; giving up at expiration");
            if (states.get(request.name) === state) states.delete(request.name);
          }
        },
      );
      state.inflight = p;
    };
    arm(((expiresAt - clock.now()) * 2) / 3);
  };

  return {
    name: "refresh",
    async register(ctx, entry, next) {
      await stop(entry.name);
      const res = await next.register(ctx, entry);
      start(ctx, entry, res, next);
      return res;
    },
    find: (ctx, query, next) => next.find(ctx, query),
    async unregister(ctx, entry, next) {
      await stop(entry.name);
      await next.unregister(ctx, entry);
    },
  };
}
