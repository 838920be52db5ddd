/**
 * The MonitorConnections side of a server: keeps the connections the `monitor` element saw and streams
 * their changes — an INITIAL_STATE_TRANSFER snapshot, then UPDATE and DELETE events — to every subscriber
 * whose selector matches. Each subscriber has a bounded buffer: one that falls behind is ended with
 * `ResourceExhausted` (after the events it already has) instead of silently losing events, so it knows to
 * subscribe again and get a fresh snapshot.
 */
import { clone, create } from "@bufbuild/protobuf";
import {
  type Connection,
  type ConnectionEvent,
  ConnectionEventSchema,
  ConnectionEventType,
  ConnectionSchema,
  type MonitorScopeSelector,
  type State,
} from "@nsm-ts/api/networkservice";
import type { CallContext } from "@nsm-ts/base/context";
import type { Logger } from "@nsm-ts/base/log";
import { AsyncQueue } from "@nsm-ts/base/queue";
import { Code, StatusError } from "@nsm-ts/base/status";
import type { MonitorConnectionServer } from "../../core/types.js";
import { matchesSelector } from "./selector.js";

/** Options of a ConnectionMonitor. */
export interface ConnectionMonitorOptions {
  /**
   * Events buffered per subscriber before it is ended with ResourceExhausted; default 4 096. A client's heal
   * watches share one stream per next hop, so a burst of a thousand Requests or Closes is a thousand events on it.
   */
  bufferSize?: number;
}

class Subscriber {
  private readonly queue: AsyncQueue<ConnectionEvent>;

  constructor(
    readonly selector: MonitorScopeSelector,
    limit: number,
  ) {
    const overflow = (): StatusError =>
      new StatusError(Code.ResourceExhausted, `monitor: subscriber fell behind by more than ${limit} events; subscribe again`);
    this.queue = new AsyncQueue<ConnectionEvent>({ capacity: limit, overflow });
  }

  /** Queues the part of `event` this subscriber selected; returns false once it has fallen behind. */
  offer(type: ConnectionEventType, conns: readonly Connection[]): boolean {
    if (this.queue.ended) return false;
    const selected = conns.filter((c) => matchesSelector(c, this.selector));
    if (selected.length === 0 && type !== ConnectionEventType.INITIAL_STATE_TRANSFER) return true;
    const connections: Record<string, Connection> = {};
    for (const c of selected) connections[c.id] = c;
    return this.queue.push(create(ConnectionEventSchema, { type, connections }));
  }

  /** The next event; undefined when `signal` aborted; throws ResourceExhausted after an overflow. */
  take(signal: AbortSignal): Promise<ConnectionEvent | undefined> {
    return this.queue.take(signal);
  }
}

/** Connection state of one server plus its MonitorConnections subscribers. */
export class ConnectionMonitor implements MonitorConnectionServer {
  private readonly conns = new Map<string, Connection>();
  private readonly subs = new Set<Subscriber>();
  private readonly limit: number;

  constructor(opts: ConnectionMonitorOptions = {}) {
    this.limit = opts.bufferSize ?? 4096;
    if (!Number.isInteger(this.limit) || this.limit < 1)
      throw new RangeError(`monitor: bufferSize must be a positive integer, got ${this.limit}`);
  }

  /** Number of open subscriptions (tests check it drops to 0). */
  get subscribers(): number {
    return this.subs.size;
  }

  /** Number of connections held now (what `nsm_active_connections` reports). */
  get size(): number {
    return this.conns.size;
  }

  /** A copy of the connection stored under `id`. */
  get(id: string): Connection | undefined {
    const c = this.conns.get(id);
    return c && clone(ConnectionSchema, c);
  }

  /** Copies of all stored connections. */
  connections(): Connection[] {
    return [...this.conns.values()].map((c) => clone(ConnectionSchema, c));
  }

  /** Stores `conn` (a copy, with `state` when given) and sends UPDATE to matching subscribers. */
  update(conn: Connection, state?: State): void {
    const c = clone(ConnectionSchema, conn);
    if (state !== undefined) c.state = state;
    this.conns.set(c.id, c);
    this.publish(ConnectionEventType.UPDATE, [c]);
  }

  /**
   * Sets the state of a stored connection (e.g. DOWN when a monitor of the next hop reports it dead, or
   * REFRESH_REQUESTED) and sends UPDATE; returns false when the connection is unknown.
   */
  setState(id: string, state: State): boolean {
    const stored = this.conns.get(id);
    if (!stored) return false;
    const c = clone(ConnectionSchema, stored);
    c.state = state;
    this.conns.set(id, c);
    this.publish(ConnectionEventType.UPDATE, [c]);
    return true;
  }

  /** Forgets `conn` and sends DELETE (with the last stored version) to matching subscribers. */
  delete(conn: Connection): void {
    const stored = this.conns.get(conn.id);
    this.conns.delete(conn.id);
    this.publish(ConnectionEventType.DELETE, [stored ?? clone(ConnectionSchema, conn)]);
  }

  /** Streams the initial state transfer, then UPDATE/DELETE events, until `ctx.signal` aborts. */
  monitorConnections(ctx: CallContext, selector: MonitorScopeSelector): AsyncIterable<ConnectionEvent> {
    return this.stream(ctx.signal, ctx.log, selector);
  }

  private async *stream(signal: AbortSignal, log: Logger, selector: MonitorScopeSelector): AsyncGenerator<ConnectionEvent> {
    const sub = new Subscriber(selector, this.limit);
    // Registration and snapshot happen together (no await between), so no event falls in between.
    this.subs.add(sub);
    sub.offer(ConnectionEventType.INITIAL_STATE_TRANSFER, [...this.conns.values()]);
    try {
      for (;;) {
        const ev = await sub.take(signal);
        if (!ev) return;
        yield ev;
      }
    } catch (err) {
      log.warn({ err }, "monitor: ending a subscription");
      throw err;
    } finally {
      this.subs.delete(sub);
    }
  }

  private publish(type: ConnectionEventType, conns: Connection[]): void {
    for (const sub of this.subs) sub.offer(type, conns);
  }
}
