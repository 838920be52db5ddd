/**
 * The standard `grpc.health.v1.Health` service (Check + Watch) over a status table, as grpc-health-probe and
 * Kubernetes probes expect: unknown services answer NOT_FOUND on Check and SERVICE_UNKNOWN on Watch.
 */
import { Health, HealthCheckResponse_ServingStatus as S } from "@nsm-ts/api/health";
import { Code, StatusError } from "../status/index.js";
import type { ServiceImpl } from "./types.js";

/** A health status a server sets for a service name. */
export type HealthStatus = "SERVING" | "NOT_SERVING";

/** The health service descriptor every server registers. */
export const healthService = Health;

/** Status per service name with change notification for Watch streams. */
export class HealthState {
  private readonly statuses = new Map<string, S>();
  private waiters = new Set<() => void>();

  /** Sets a service's status and wakes watchers. */
  set(service: string, status: HealthStatus): void {
    this.statuses.set(service, status === "SERVING" ? S.SERVING : S.NOT_SERVING);
    this.notify();
  }

  /** Marks every service NOT_SERVING (server shutdown) so probes stop routing here. */
  shutdown(): void {
    for (const k of this.statuses.keys()) this.statuses.set(k, S.NOT_SERVING);
    this.notify();
  }

  /** The status of a service, undefined when it was never set. */
  get(service: string): S | undefined {
    return this.statuses.get(service);
  }

  /** Resolves on the next change or when `signal` aborts. */
  changed(signal: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        this.waiters.delete(done);
        signal.removeEventListener("abort", done);
        resolve();
      };
      this.waiters.add(done);
      signal.addEventListener("abort", done, { once: true });
    });
  }

  private notify(): void {
    const ws = this.waiters;
    this.waiters = new Set();
    for (const w of ws) w();
  }
}

/** Handlers of `grpc.health.v1.Health` over a status table. */
export function healthImpl(state: HealthState): ServiceImpl<typeof Health> {
  return {
    async check(req) {
      const status = state.get(req.service);
      if (status === undefined) throw new StatusError(Code.NotFound, `health: unknown service ${JSON.stringify(req.service)}`);
      return { status };
    },
    async *watch(req, ctx) {
      let last: S | undefined;
      while (!ctx.signal.aborted) {
        const status = state.get(req.service) ?? S.SERVICE_UNKNOWN;
        if (status !== last) {
          last = status;
          yield { status };
          continue;
        }
        await state.changed(ctx.signal);
      }
    },
  };
}
