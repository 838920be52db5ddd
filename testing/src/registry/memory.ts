/**
 * A tiny in-memory registry for the discovery elements' unit tests: Register,
 * Unregister and Find with watch, matching templates by name, service names, labels and URL. The real stores
 * live in `@nsm-ts/sdk/registry` (stores); these tests must not depend on them.
 */
import { clone, create } from "@bufbuild/protobuf";
import { type NetworkService, type NetworkServiceEndpoint, NetworkServiceEndpointSchema, NetworkServiceSchema } from "@nsm-ts/api/registry";
import type { CallContext } from "@nsm-ts/base/context";
import type { FindQuery, FindResult, NseHandler, NsHandler, RegistryEntry, RegistryHandler } from "@nsm-ts/sdk/registry";

function isNse(e: RegistryEntry): e is NetworkServiceEndpoint {
  return e.$typeName === "registry.NetworkServiceEndpoint";
}

function matches(t: RegistryEntry, c: RegistryEntry): boolean {
  if (t.name !== "" && t.name !== c.name) return false;
  if (isNse(t) && isNse(c)) {
    if (!t.networkServiceNames.every((n) => c.networkServiceNames.includes(n))) return false;
    for (const [svc, want] of Object.entries(t.networkServiceLabels)) {
      const have = c.networkServiceLabels[svc];
      if (!have) return false;
      for (const [k, v] of Object.entries(want.labels)) if (have.labels[k] !== v) return false;
    }
    if (t.url !== "" && !c.url.includes(t.url)) return false;
  } else if (!isNse(t) && !isNse(c)) {
    if (t.payload !== "" && t.payload !== c.payload) return false;
  }
  return true;
}

/** An in-memory registry handler with watch support; `watchers` counts open watches (tests assert 0). */
export class MemRegistry<T extends RegistryEntry> implements RegistryHandler<T> {
  private readonly entries = new Map<string, T>();
  private readonly subs = new Set<(r: FindResult<T>) => void>();
  private counter = 0;
  private watchWaiters: Array<() => void> = [];

  constructor(private readonly copy: (e: T) => T) {}

  /** Number of open watch streams. */
  get watchers(): number {
    return this.subs.size;
  }

  /** Resolves once at least `n` watches are open (lets a test register after the element started waiting). */
  async untilWatchers(n = 1): Promise<void> {
    while (this.subs.size < n) await new Promise<void>((r) => this.watchWaiters.push(r));
  }

  async register(_ctx: CallContext, entry: T): Promise<T> {
    const e = this.copy(entry);
    if (!e.name) e.name = `entry-${++this.counter}`;
    this.entries.set(e.name, e);
    for (const s of this.subs) s({ entry: this.copy(e), deleted: false });
    return this.copy(e);
  }

  async unregister(_ctx: CallContext, entry: T): Promise<void> {
    const e = this.entries.get(entry.name);
    if (!e) return;
    this.entries.delete(entry.name);
    for (const s of this.subs) s({ entry: this.copy(e), deleted: true });
  }

  async *find(ctx: CallContext, query: FindQuery<T>): AsyncIterable<FindResult<T>> {
    const queue: FindResult<T>[] = [];
    let wake: (() => void) | undefined;
    const sub = (r: FindResult<T>): void => {
      if (!matches(query.template, r.entry)) return;
      queue.push(r);
      wake?.();
    };
    const onAbort = (): void => wake?.();
    if (query.watch) {
      this.subs.add(sub);
      for (const w of this.watchWaiters.splice(0)) w();
      ctx.signal.addEventListener("abort", onAbort);
    }
    try {
      for (const e of [...this.entries.values()]) if (matches(query.template, e)) yield { entry: this.copy(e), deleted: false };
      if (!query.watch) return;
      while (!ctx.signal.aborted) {
        const r = queue.shift();
        if (r) {
          yield r;
          continue;
        }
        await new Promise<void>((resolve) => (wake = resolve));
        wake = undefined;
      }
    } finally {
      this.subs.delete(sub);
      ctx.signal.removeEventListener("abort", onAbort);
    }
  }
}

/** A fresh in-memory endpoint registry. */
export function memNseRegistry(): MemRegistry<NetworkServiceEndpoint> & NseHandler {
  return new MemRegistry<NetworkServiceEndpoint>((e) => clone(NetworkServiceEndpointSchema, e));
}

/** A fresh in-memory network service registry. */
export function memNsRegistry(): MemRegistry<NetworkService> & NsHandler {
  return new MemRegistry<NetworkService>((e) => clone(NetworkServiceSchema, e));
}

/** Shorthand for building endpoints in tests. */
export function nseOf(init: Parameters<typeof create<typeof NetworkServiceEndpointSchema>>[1]): NetworkServiceEndpoint {
  return create(NetworkServiceEndpointSchema, init);
}

/** Shorthand for building network services in tests. */
export function nsOf(init: Parameters<typeof create<typeof NetworkServiceSchema>>[1]): NetworkService {
  return create(NetworkServiceSchema, init);
}
