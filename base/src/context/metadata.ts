/**
 * Per-connection state for elements, instead of module-level maps: each connection has a server half
 * (used by server elements) and a client half (used by client elements), each a typed key/value store.
 */

/** A typed key into a MetadataMap; create one per piece of state, at module level. */
// biome-ignore lint/correctness/noUnusedVariables: T is a phantom type that types the value stored under the key.
export class MetaKey<T> {
  constructor(readonly name: string) {}
}

/** A typed map of per-connection state. */
export class MetadataMap {
  private readonly m = new Map<MetaKey<unknown>, unknown>();
  /** The value under `key`. */
  get<T>(key: MetaKey<T>): T | undefined {
    return this.m.get(key as MetaKey<unknown>) as T | undefined;
  }
  /** Sets the value under `key`. */
  set<T>(key: MetaKey<T>, value: T): void {
    this.m.set(key as MetaKey<unknown>, value);
  }
  /** True when `key` has a value. */
  has<T>(key: MetaKey<T>): boolean {
    return this.m.has(key as MetaKey<unknown>);
  }
  /** Removes `key`; returns the old value. */
  delete<T>(key: MetaKey<T>): T | undefined {
    const v = this.get(key);
    this.m.delete(key as MetaKey<unknown>);
    return v;
  }
  /** Returns the value under `key`, creating it with `make` first if absent. */
  getOrSet<T>(key: MetaKey<T>, make: () => T): T {
    if (this.has(key)) return this.get(key) as T;
    const v = make();
    this.set(key, v);
    return v;
  }
}

/** Both halves of one connection's state. */
export class ConnectionMetadata {
  /** State of server elements. */
  readonly server = new MetadataMap();
  /** State of client elements. */
  readonly client = new MetadataMap();
}
