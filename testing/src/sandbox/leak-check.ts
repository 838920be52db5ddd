/**
 * Leak checks for tests: counts of the live libuv resources that matter (servers, sockets, timers) before a
 * test, and what is still left over after it once pending closes have had their event-loop turns.
 */

const WATCHED = new Set(["TCPServerWrap", "TCPSocketWrap", "PipeServerWrap", "PipeWrap", "Timeout", "FSEventWrap"]);

/** Counts of the watched resource types alive now (`process.getActiveResourcesInfo`). */
export function resourceSnapshot(): Map<string, number> {
  const m = new Map<string, number>();
  for (const r of process.getActiveResourcesInfo()) if (WATCHED.has(r)) m.set(r, (m.get(r) ?? 0) + 1);
  return m;
}

function diff(before: Map<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, n] of resourceSnapshot()) {
    const extra = n - (before.get(k) ?? 0);
    if (extra > 0) out[k] = extra;
  }
  return out;
}

/**
 * The resources alive beyond `before`, after letting closing sockets and timers finish (event-loop turns for up
 * to `withinMs`, default 2000); `{}` when nothing leaked.
 */
export async function leftovers(before: Map<string, number>, withinMs = 2000): Promise<Record<string, number>> {
  const until = Date.now() + withinMs;
  for (;;) {
    const d = diff(before);
    if (Object.keys(d).length === 0 || Date.now() > until) return d;
    await new Promise<void>((r) => setImmediate(r));
  }
}
