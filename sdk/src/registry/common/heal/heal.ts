/**
 * heal (registry client): after a successful Register, watches its own name (Find with watch) and registers again
 * when the registry reports the entry deleted (expired, lost by a restarted memory registry) or when the watch
 * stream breaks (registry restart, network); a failed attempt is retried every `retryIntervalMs` on `ctx.clock`.
 * Unregister (or the lifetime `signal`) stops it. Place after `retry` and before `refresh`, so a healing Register
 * restarts the refresh.
 */
import type { CallContext } from "@nsm-ts/base/context";
import type { RegistryElement, RegistryEntry, RegistryHandler } from "../../core/index.js";
import { cloneEntry, templateFor } from "../entry.js";
import { pathKey } from "../grpcmetadata/index.js";

/** Options of `heal.newClient`. */
export interface HealOptions {
  /** Pause before re-registering after a broken stream, and between failed attempts; default 1 000 ms. */
  retryIntervalMs?: number;
  /** Stops every heal when aborted (the owner's lifetime). */
  signal?: AbortSignal;
}

interface State {
  ac: AbortController;
  done: Promise<void>;
}

/** Creates the client element (see the header comment). */
export function newClient<T extends RegistryEntry>(opts: HealOptions = {}): RegistryElement<T> {
  const retryMs = opts.retryIntervalMs ?? 1000;
  const states = new Map<string, State>();

  const stop = async (name: string): Promise<void> => {
    const s = states.get(name);
    if (s === undefined) return;
    states.delete(name);
    s.ac.abort();
    await s.done;
  };
  opts.signal?.addEventListener("abort", () => {
    for (const name of [...states.keys()]) void stop(name);
  });

  const watch = async (ctx: CallContext, request: T, next: RegistryHandler<T>, signal: AbortSignal): Promise<void> => {
    const name = request.name;
    const pause = (): Promise<boolean> =>
      ctx.clock.sleep(retryMs, signal).then(
        () => true,
        () => false,
      );
    while (!signal.aborted) {
      let why = "watch stream ended";
      try {
        for await (const ev of next.find(ctx, { template: templateFor(request, name), watch: true })) {
          if (ev.deleted && ev.entry.name === name) {
            why = "entry deleted";
            break;
          }
        }
      } catch (err) {
        why = `watch stream failed: ${err instanceof Error ? err.message : String(err)}`;
      }
      if (signal.aborted) return;
      ctx.log.info({ element: "heal", name, why }, "registering again");
      // A broken stream usually means the registry is restarting: give it a moment instead of spinning.
      if (why !== "entry deleted" && !(await pause())) return;
      for (;;) {
        try {
          await next.register(ctx, cloneEntry(request));
          break;
        } catch (err) {
          if (signal.aborted) return;
          ctx.log.warn({ element: "heal", name, err }, "re-register failed; retrying");
          if (!(await pause())) return;
        }
      }
    }
  };

  return {
    name: "heal",
    async register(ctx, entry, next) {
      await stop(entry.name);
      const res = await next.register(ctx, entry);
      if (!opts.signal?.aborted) {
        const ac = new AbortController();
        const bg = ctx.without(pathKey).withSignal(ac.signal).withDeadline(undefined);
        const done = watch(bg, cloneEntry(entry), next, ac.signal).catch((err: unknown) => {
          ctx.log.error({ element: "heal", name: entry.name, err }, "heal stopped");
        });
        states.set(entry.name, { ac, done });
      }
      return res;
    },
    find: (ctx, query, next) => next.find(ctx, query),
    async unregister(ctx, entry, next) {
      await stop(entry.name);
      await next.unregister(ctx, entry);
    },
  };
}
