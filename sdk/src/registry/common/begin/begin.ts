/**
 * begin (registry): Register and Unregister of the same name run one at a time, in arrival order, so a refresh
 * racing an unregister (or two replicas' refreshes through one server) cannot interleave their store updates.
 * Calls for different names and Find are not held up. Place early in server and client chains.
 */
import type { RegistryElement, RegistryEntry } from "../../core/index.js";

/** A per-key FIFO lock (internal to begin, exported for tests). */
export class KeyedSerializer {
  private readonly tails = new Map<string, Promise<void>>();

  /** Runs `fn` after every earlier call for `key` has settled. */
  async run<R>(key: string, fn: () => Promise<R>): Promise<R> {
    const prev = this.tails.get(key) ?? Promise.resolve();
    let release: () => void = () => undefined;
    const mine = new Promise<void>((r) => {
      release = r;
    });
    const tail = prev.then(() => mine);
    this.tails.set(key, tail);
    await prev;
    try {
      return await fn();
    } finally {
      release();
      if (this.tails.get(key) === tail) this.tails.delete(key);
    }
  }

  /** Number of keys with a call in flight or queued (tests check it drains to 0). */
  get size(): number {
    return this.tails.size;
  }
}

function element<T extends RegistryEntry>(): RegistryElement<T> {
  const lock = new KeyedSerializer();
  return {
    name: "begin",
    register: (ctx, entry, next) => lock.run(entry.name, () => next.register(ctx, entry)),
    find: (ctx, query, next) => next.find(ctx, query),
    unregister: (ctx, entry, next) => lock.run(entry.name, () => next.unregister(ctx, entry)),
  };
}

/** Server side: serialises by name. */
export function newServer<T extends RegistryEntry>(): RegistryElement<T> {
  return element<T>();
}

/** Client side: serialises by name (a refresh never overlaps the caller's own Unregister). */
export function newClient<T extends RegistryEntry>(): RegistryElement<T> {
  return element<T>();
}
