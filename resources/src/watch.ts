/**
 * What the memory and the etcd store's watches share: the revision argument, the bounded buffer of live events
 * (a watcher that lets it fill is ended with ResourceExhausted after what was buffered, so a slow reader never
 * holds up writers or costs unbounded memory) and the set of open watches a closing store ends.
 */
import { AsyncQueue } from "@nsm-ts/base/queue";
import { Code, fail, StatusError } from "@nsm-ts/base/status";
import type { ResourceKind, StoreWatchEvent } from "./store.js";

/** Default live events buffered per watcher (as the registry's watch). */
export const DEFAULT_WATCH_BUFFER = 256;

/** The watch's start revision as a bigint (0 for none); InvalidArgument naming `from_revision` when malformed. */
export function parseFromRevision(rev: string | undefined): bigint {
  if (rev === undefined || rev === "") return 0n;
  if (!/^\d{1,20}$/.test(rev)) fail(Code.InvalidArgument, `resources: from_revision: "${rev}" is not a revision (a decimal number)`);
  return BigInt(rev);
}

/** Open watch buffers of one store, ended with Unavailable when it closes. */
export class WatchQueues {
  private readonly open = new Set<AsyncQueue<StoreWatchEvent>>();

  /** A bounded buffer for a watch of `kind`; `release` it when the watch ends. */
  create(kind: ResourceKind, bufferSize: number | undefined): AsyncQueue<StoreWatchEvent> {
    const capacity = bufferSize ?? DEFAULT_WATCH_BUFFER;
    const q = new AsyncQueue<StoreWatchEvent>({
      capacity,
      overflow: () =>
        new StatusError(
          Code.ResourceExhausted,
          `resources: watch of ${kind}: the watcher fell ${capacity} events behind and was disconnected; resume from the last revision it saw`,
        ),
    });
    this.open.add(q);
    return q;
  }

  /** Forgets a buffer whose watch ended. */
  release(q: AsyncQueue<StoreWatchEvent>): void {
    this.open.delete(q);
  }

  /** Ends every open watch with Unavailable (the store closed). */
  closeAll(what: string): void {
    for (const q of this.open) q.end(new StatusError(Code.Unavailable, `resources: ${what} closed`));
    this.open.clear();
  }
}

/** Yields the buffered live events until `signal` aborts; throws the buffer's error (overflow, store closed, lost feed). */
export async function* drain(q: AsyncQueue<StoreWatchEvent>, signal: AbortSignal): AsyncGenerator<StoreWatchEvent, void, undefined> {
  for (;;) {
    const ev = await q.take(signal);
    if (ev === undefined) return;
    yield ev;
  }
}
