/**
 * begin: serialises everything that happens to one connection — Request, Close and the background events
 * of refresh, heal and timeout — so elements after it never see two operations on the same connection at
 * once. It remembers the last request and returned connection and gives elements after it an
 * `EventFactory` (through the context) to re-run Request or Close from this point later.
 *
 * Place right after `updatepath` (it keys on `connection.id`). Server side it sets `state = UP` on success.
 * On a Request with `state = RESELECT_REQUESTED` for an established connection it first closes the old one
 * down the chain, so the elements after it select anew.
 */

import { clone } from "@bufbuild/protobuf";
import {
  type Connection,
  ConnectionSchema,
  type NetworkServiceRequest,
  NetworkServiceRequestSchema,
  State,
} from "@nsm-ts/api/networkservice";
import { CallContext, ContextKey } from "@nsm-ts/base/context";
import { Code, fail, isRetryable, isStatusError } from "@nsm-ts/base/status";
import type { NetworkServiceElement, NetworkServiceHandler } from "../../core/types.js";

/** Re-runs operations on one connection from the begin element, serialised with everything else. */
export interface EventFactory {
  /** The connection id. */
  readonly id: string;
  /** Aborted once the connection is closed (by Close or by an event). */
  readonly signal: AbortSignal;
  /**
   * Re-runs Request with the last request and connection (refresh, heal). With `reselect`, closes the
   * current connection first and asks again with `state = RESELECT_REQUESTED`, no mechanism and no endpoint.
   * Resolves to the new connection, or undefined when the connection is no longer established.
   */
  request(opts?: EventOptions & { reselect?: boolean }): Promise<Connection | undefined>;
  /** Closes the connection from begin onwards (timeout, heal giving up). */
  close(opts?: EventOptions): Promise<void>;
}

/** Options of one event. */
export interface EventOptions {
  /**
   * Cancels the event if it is aborted before the event's turn comes: a timer that fired while a Request
   * was in flight must not act once that Request has replaced it (timeout, refresh).
   */
  signal?: AbortSignal;
}

/** Context key under which begin hands its EventFactory to the elements after it. */
export const eventFactoryKey = new ContextKey<EventFactory>("begin.eventFactory");

/**
 * Context key begin sets on the Close it sends down the chain before a reselect (an event's `reselect`, or a
 * Request with `state = RESELECT_REQUESTED`): the connection lives on, so elements keep their background work
 * (heal keeps healing when the reselect's Request fails).
 */
export const reselectCloseKey = new ContextKey<true>("begin.reselectClose");

/** True when this Close is the one begin sends before a reselect (the connection itself is not ending). */
export function isReselectClose(ctx: CallContext): boolean {
  return reselectCloseKey.get(ctx) === true;
}

/** The EventFactory of the current connection; fails when begin is not in the chain before the caller. */
export function eventFactoryOf(ctx: CallContext, element: string): EventFactory {
  return eventFactoryKey.get(ctx) ?? fail(Code.Internal, `${element}: no begin element before it in the chain`);
}

/** Options of begin. */
export interface BeginOptions {
  /** Deadline given to background events when the original request had none; default 15 000 ms. */
  eventTimeoutMs?: number;
  /**
   * The owner's lifetime: when it aborts, every connection is forgotten without a Close and its lifetime signal
   * aborts, so the background work bound to it (timeout, refresh) stops and nothing of a disposed chain stays.
   */
  signal?: AbortSignal;
}

/** Pause before the one retry of a Close that failed transiently, in ms. */
export const CLOSE_RETRY_MS = 200;

type Phase = "new" | "established" | "closed";

class ConnState implements EventFactory {
  phase: Phase = "new";
  last: NetworkServiceRequest | undefined;
  baseCtx: CallContext | undefined;
  timeoutMs: number;
  private queue: Promise<unknown> = Promise.resolve();
  private readonly lifetime = new AbortController();

  constructor(
    readonly id: string,
    private readonly owner: Begin,
    private readonly next: NetworkServiceHandler,
    timeoutMs: number,
  ) {
    this.timeoutMs = timeoutMs;
  }

  get signal(): AbortSignal {
    return this.lifetime.signal;
  }

  run<T>(fn: () => Promise<T>): Promise<T> {
    const p = this.queue.then(fn, fn);
    this.queue = p.catch(() => undefined);
    return p;
  }

  /** Context for background events: the original request's values, a fresh deadline, the connection's lifetime. */
  eventCtx(): CallContext {
    const base = this.baseCtx ?? CallContext.create();
    return base
      .withSignal(this.lifetime.signal)
      .withDeadline(base.clock.now() + this.timeoutMs)
      .with(eventFactoryKey, this);
  }

  finish(): void {
    this.phase = "closed";
    this.owner.forget(this);
    this.lifetime.abort(new Error(`begin: connection ${this.id} closed`));
  }

  request(opts: EventOptions & { reselect?: boolean } = {}): Promise<Connection | undefined> {
    return this.run(async () => {
      if (opts.signal?.aborted) return undefined;
      if (this.phase !== "established" || !this.last?.connection || this.owner.current(this.id) !== this) return undefined;
      const req = clone(NetworkServiceRequestSchema, this.last);
      const conn = req.connection as Connection;
      if (opts.reselect) {
        await this.closeDownstream(this.eventCtx().with(reselectCloseKey, true));
        conn.mechanism = undefined;
        conn.networkServiceEndpointName = "";
        conn.state = State.RESELECT_REQUESTED;
        this.phase = "established"; // still owned by us: the re-request below re-establishes or fails
      }
      const ctx = this.eventCtx();
      const out = await this.next.request(ctx, req);
      this.remember(ctx, req, out);
      return out;
    });
  }

  close(opts: EventOptions = {}): Promise<void> {
    return this.run(async () => {
      if (opts.signal?.aborted) return;
      if (this.phase !== "established" || this.owner.current(this.id) !== this) return;
      try {
        await this.closeDownstream(this.eventCtx());
      } finally {
        this.finish();
      }
    });
  }

  async closeDownstream(ctx: CallContext): Promise<void> {
    const conn = this.last?.connection;
    if (!conn) return;
    try {
      await this.next.close(ctx, clone(ConnectionSchema, conn));
    } catch (err) {
      ctx.log.warn({ connId: this.id, err }, "begin: close of the previous connection failed");
    }
  }

  remember(ctx: CallContext, req: NetworkServiceRequest, out: Connection): void {
    if (this.owner.side === "server") out.state = State.UP;
    const stored = clone(NetworkServiceRequestSchema, req);
    stored.connection = clone(ConnectionSchema, out);
    this.last = stored;
    this.baseCtx = this.baseCtx ?? ctx;
    this.phase = "established";
  }
}

class Begin {
  private readonly states = new Map<string, ConnState>();
  constructor(
    readonly side: "server" | "client",
    private readonly opts: BeginOptions,
  ) {
    opts.signal?.addEventListener("abort", () => {
      for (const st of [...this.states.values()]) st.finish();
    });
  }

  current(id: string): ConnState | undefined {
    return this.states.get(id);
  }
  forget(st: ConnState): void {
    if (this.states.get(st.id) === st) this.states.delete(st.id);
  }
  size(): number {
    return this.states.size;
  }

  async request(ctx: CallContext, req: NetworkServiceRequest, next: NetworkServiceHandler): Promise<Connection> {
    const element = this.side === "server" ? "begin" : "begin-client";
    const id =
      req.connection?.id || fail(Code.InvalidArgument, `${element}: connection.id must not be empty (place begin after updatepath)`);
    let st = this.states.get(id);
    if (!st) {
      const remaining = ctx.remainingMs();
      st = new ConnState(id, this, next, remaining !== undefined && remaining > 0 ? remaining : (this.opts.eventTimeoutMs ?? 15_000));
      this.states.set(id, st);
    }
    const mine = st;
    return mine.run(async () => {
      // Closed (and maybe re-created) while we waited in the queue: start over with the current state.
      if (this.states.get(id) !== mine) return this.request(ctx, req, next);
      const conn = req.connection as Connection;
      if (mine.phase === "established" && conn.state === State.RESELECT_REQUESTED) {
        ctx.log.info({ connId: id }, `${element}: closing the current connection for RESELECT_REQUESTED`);
        await mine.closeDownstream(ctx.with(reselectCloseKey, true));
        mine.phase = "new";
      }
      // The request's own context must not end the connection's life: events get their own signal.
      mine.baseCtx = ctx.withSignal(new AbortController().signal);
      const evCtx = ctx.with(eventFactoryKey, mine);
      try {
        const out = await next.request(evCtx, req);
        mine.remember(evCtx, req, out);
        return out;
      } catch (err) {
        if (mine.phase !== "established") mine.finish();
        throw err;
      }
    });
  }

  async close(ctx: CallContext, conn: Connection, next: NetworkServiceHandler): Promise<void> {
    const st = this.states.get(conn.id);
    if (!st) return; // nothing established under this id: Close is idempotent
    await st.run(async () => {
      if (st.phase !== "established" || this.states.get(conn.id) !== st) return;
      let denied = false;
      // Close with the last connection we returned: it has the path the next hops know.
      const last = st.last?.connection ?? conn;
      const closeDown = (): Promise<void> => next.close(ctx.with(eventFactoryKey, st), clone(ConnectionSchema, last));
      try {
        try {
          await closeDown();
        } catch (err) {
          // Client side: one more try while the state is still ours (a retry before begin would find it gone), if
          // time allows. Servers leave it to their caller and to the next hops' timeouts.
          const at = ctx.clock.now() + CLOSE_RETRY_MS;
          const late = ctx.deadline !== undefined && at >= ctx.deadline;
          if (this.side !== "client" || !isRetryable(err) || ctx.signal.aborted || late) throw err;
          ctx.log.warn({ connId: conn.id, err, retryInMs: CLOSE_RETRY_MS }, "begin: close failed, trying once more");
          await ctx.clock.sleep(CLOSE_RETRY_MS, ctx.signal);
          await closeDown();
        }
      } catch (err) {
        // A Close the policies refused must not end the connection for its rightful owner.
        denied = isStatusError(err, Code.PermissionDenied);
        throw err;
      } finally {
        if (!denied) st.finish();
      }
    });
  }
}

function make(side: "server" | "client", opts: BeginOptions): NetworkServiceElement & { size(): number } {
  const b = new Begin(side, opts);
  return {
    name: side === "server" ? "begin" : "begin-client",
    size: () => b.size(),
    request: (ctx, req, next) => b.request(ctx, req, next),
    close: (ctx, conn, next) => b.close(ctx, conn, next),
  };
}

/** Server-side begin. */
export function newServer(opts: BeginOptions = {}): NetworkServiceElement & { size(): number } {
  return make("server", opts);
}

/** Client-side begin. */
export function newClient(opts: BeginOptions = {}): NetworkServiceElement & { size(): number } {
  return make("client", opts);
}
