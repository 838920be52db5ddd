/**
 * The per-call context that every chain element receives. It is immutable: elements derive a new one with
 * `with…` methods and hand it to `next`. It replaces the Go SDK's context values with explicit, typed fields.
 */
import { type Clock, realClock } from "../clock/index.js";
import type { PeerInfo } from "../identity/index.js";
import { type Logger, silentLogger } from "../log/index.js";
import { ConnectionMetadata } from "./metadata.js";

/** A typed key for values carried in a CallContext. */
export class ContextKey<T> {
  constructor(readonly name: string) {}
  /** The value in `ctx`, or undefined. */
  get(ctx: CallContext): T | undefined {
    return ctx.value(this);
  }
}

interface Fields {
  signal: AbortSignal;
  deadline: number | undefined;
  log: Logger;
  clock: Clock;
  peer: PeerInfo | undefined;
  metadata: ConnectionMetadata;
  values: ReadonlyMap<ContextKey<unknown>, unknown>;
}

/** Options of `createContext`; everything has a default. */
export interface ContextOptions {
  /** Aborts the call; default: never aborts. */
  signal?: AbortSignal;
  /** Absolute deadline in epoch ms. */
  deadline?: number;
  /** Logger; default silent. */
  log?: Logger;
  /** Clock; default the real clock. */
  clock?: Clock;
  /** Caller information (server side). */
  peer?: PeerInfo;
}

/** The immutable per-call context. */
export class CallContext {
  private constructor(private readonly f: Fields) {}

  /** Creates a root context. */
  static create(opts: ContextOptions = {}): CallContext {
    return new CallContext({
      signal: opts.signal ?? new AbortController().signal,
      deadline: opts.deadline,
      log: opts.log ?? silentLogger,
      clock: opts.clock ?? realClock,
      peer: opts.peer,
      metadata: new ConnectionMetadata(),
      values: new Map(),
    });
  }

  /** Aborted when the caller cancels, the deadline passes, or the owner shuts down. */
  get signal(): AbortSignal {
    return this.f.signal;
  }
  /** Absolute deadline in epoch ms (per `clock`), if any. */
  get deadline(): number | undefined {
    return this.f.deadline;
  }
  /** Logger, usually a child carrying the connection id. */
  get log(): Logger {
    return this.f.log;
  }
  /** Time source. */
  get clock(): Clock {
    return this.f.clock;
  }
  /** The caller (server side). */
  get peer(): PeerInfo | undefined {
    return this.f.peer;
  }
  /** Per-connection state; real once the `metadata` element has run, a throwaway store before. */
  get metadata(): ConnectionMetadata {
    return this.f.metadata;
  }
  /** Milliseconds until the deadline (per `clock`), or undefined without one. */
  remainingMs(): number | undefined {
    return this.f.deadline === undefined ? undefined : this.f.deadline - this.f.clock.now();
  }

  /** A typed value set with `with`. */
  value<T>(key: ContextKey<T>): T | undefined {
    return this.f.values.get(key as ContextKey<unknown>) as T | undefined;
  }
  /** A copy carrying `value` under `key`. */
  with<T>(key: ContextKey<T>, value: T): CallContext {
    const values = new Map(this.f.values);
    values.set(key as ContextKey<unknown>, value);
    return new CallContext({ ...this.f, values });
  }
  /** A copy without the value under `key`. */
  without<T>(key: ContextKey<T>): CallContext {
    if (!this.f.values.has(key as ContextKey<unknown>)) return this;
    const values = new Map(this.f.values);
    values.delete(key as ContextKey<unknown>);
    return new CallContext({ ...this.f, values });
  }
  /** A copy with another signal (e.g. a per-connection lifetime for background events). */
  withSignal(signal: AbortSignal): CallContext {
    return new CallContext({ ...this.f, signal });
  }
  /** A copy with another deadline (epoch ms) or none. */
  withDeadline(deadline: number | undefined): CallContext {
    return new CallContext({ ...this.f, deadline });
  }
  /** A copy with another logger. */
  withLog(log: Logger): CallContext {
    return new CallContext({ ...this.f, log });
  }
  /** A copy with another clock. */
  withClock(clock: Clock): CallContext {
    return new CallContext({ ...this.f, clock });
  }
  /** A copy with other peer information. */
  withPeer(peer: PeerInfo | undefined): CallContext {
    return new CallContext({ ...this.f, peer });
  }
  /** A copy with another per-connection metadata store (set by the `metadata` element). */
  withMetadata(metadata: ConnectionMetadata): CallContext {
    return new CallContext({ ...this.f, metadata });
  }
}

export type { PeerInfo };
