/**
 * Watch streams of the API: the current keys under a prefix (unless skipped), then every change after that
 * read's revision, so no change falls between the two and none arrives twice. A consumer too slow to keep up
 * (1 024 buffered events) gets `ResourceExhausted` rather than silently missing one.
 */
import { AsyncQueue } from "@nsm-ts/base/queue";
import { Code, StatusError } from "@nsm-ts/base/status";
import type { Kv, KvEvent } from "./kv/index.js";

/** Yields the keys under `prefix` as puts (unless `skipExisting`), then every change, until `signal` aborts. */
export async function* watchPrefix(
  kv: Kv,
  prefix: string,
  skipExisting: boolean,
  signal: AbortSignal,
): AsyncGenerator<KvEvent & { initial?: boolean }> {
  const q = new AsyncQueue<KvEvent>({
    capacity: 1024,
    overflow: () => new StatusError(Code.ResourceExhausted, "traffic-controller: watch: the client fell more than 1024 events behind"),
  });
  const { entries, revision } = await kv.list(prefix);
  const w = await kv.watch(
    prefix,
    revision,
    (ev) => q.push(ev),
    (err) => q.end(new StatusError(Code.Unavailable, `traffic-controller: watch broke: ${err.message}`)),
  );
  const onAbort = () => q.end();
  signal.addEventListener("abort", onAbort, { once: true });
  try {
    if (!skipExisting) for (const entry of entries) yield { type: "put", entry, initial: true };
    for (;;) {
      const ev = await q.take(signal);
      if (ev === undefined) return;
      yield ev;
    }
  } finally {
    signal.removeEventListener("abort", onAbort);
    await w.stop();
  }
}
