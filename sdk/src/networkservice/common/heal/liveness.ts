/** heal: the optional data-path liveness check — one bounded check, and the periodic watch built on it. */
import { clone } from "@bufbuild/protobuf";
import { type Connection, ConnectionSchema } from "@nsm-ts/api/networkservice";
import type { Clock } from "@nsm-ts/base/clock";
import type { Logger } from "@nsm-ts/base/log";

const ELEMENT = "heal";

/**
 * A data-path liveness check (e.g. a ping through the connection's interface): resolves true while the data
 * path works. It should honour `signal`; a check that takes longer than the timeout counts as failed.
 */
export type LivenessCheck = (conn: Connection, signal: AbortSignal) => Promise<boolean>;

/** What one liveness check of a connection needs. */
export interface LivenessProbe {
  check: LivenessCheck | undefined;
  timeoutMs: number;
  clock: Clock;
  log: Logger;
  connId: string;
}

/** One liveness check of `conn`, bounded by the timeout; an exception counts as dead, no check as alive. */
export async function checkAlive(probe: LivenessProbe, conn: Connection, signal: AbortSignal): Promise<boolean> {
  const check = probe.check;
  if (!check) return true;
  const bound = new AbortController();
  const stop = (): void => bound.abort();
  signal.addEventListener("abort", stop, { once: true });
  const timer = probe.clock.setTimer(probe.timeoutMs, stop);
  const timedOut = new Promise<boolean>((resolve) => bound.signal.addEventListener("abort", () => resolve(false), { once: true }));
  try {
    return await Promise.race([check(clone(ConnectionSchema, conn), bound.signal), timedOut]);
  } catch (err) {
    probe.log.warn({ connId: probe.connId, err }, `${ELEMENT}: liveness check failed`);
    return false;
  } finally {
    timer.stop();
    bound.abort();
    signal.removeEventListener("abort", stop);
  }
}

/** Checks every `intervalMs` until a check fails ("dead") or `signal` stops the watch ("stopped"). */
export async function watchDataPath(
  probe: LivenessProbe,
  intervalMs: number,
  conn: () => Connection,
  signal: AbortSignal,
): Promise<"dead" | "stopped"> {
  for (;;) {
    try {
      await probe.clock.sleep(intervalMs, signal);
    } catch {
      return "stopped";
    }
    const alive = await checkAlive(probe, conn(), signal);
    if (signal.aborted) return "stopped";
    if (!alive) return "dead";
  }
}
