/**
 * heal: one shared MonitorConnections stream per next hop and path-segment name, which every watch of that name
 * subscribes to. A peer's HTTP/2 server answers a burst of stream resets (about 1,000 on Node) with GOAWAY, which
 * kills every call on the session; one stream per watched connection made a burst of Closes or a heal storm do
 * exactly that. The shared stream selects by name only (`[{name}]`: every connection whose path carries our
 * segment) and the events are routed to the watches by our segment's id. Watches are reference counted: the
 * stream is cancelled (one reset) when the last one goes, or, with `idleMs`, once it has had no watch for that
 * long: a hop whose connections come and go one at a time (a Close, then the next Request) then keeps one stream
 * instead of opening, authorising and state-transferring a new one per connection.
 *
 * What a watch sees is what its own stream would have shown: an INITIAL_STATE_TRANSFER with its connection (or
 * without it), then UPDATE and DELETE events of its connection, and the stream's failure. A watch that joins a
 * running stream gets a state transfer from the stream's view of the next hop; when that view does not hold the
 * connection UP yet, the watch waits for the UPDATE the next hop sends after every successful Request (it may
 * trail the Request's reply by seconds under load).
 * When the shared stream breaks, it is reopened once: the connections the new state transfer holds UP keep their
 * watches (a GOAWAY from a live peer heals nothing); the others' watches see the stream lost, as before. A peer
 * that refuses the name-only selector (PermissionDenied: upstream's `service_connection` policy wants an id), or
 * whose state transfer exceeds the receive limit (ResourceExhausted), gets one stream per watch, as before, until
 * its last watch goes.
 */
import { create } from "@bufbuild/protobuf";
import {
  type Connection,
  type ConnectionEvent,
  ConnectionEventSchema,
  ConnectionEventType,
  type MonitorScopeSelector,
  MonitorScopeSelectorSchema,
  State,
} from "@nsm-ts/api/networkservice";
import { type Clock, realClock, type Timer } from "@nsm-ts/base/clock";
import { type Logger, silentLogger } from "@nsm-ts/base/log";
import { Code, isStatusError, StatusError } from "@nsm-ts/base/status";
import type { MonitorSource } from "./monitor.js";

const ELEMENT = "heal";

/** Options of `sharedMonitorSource`. */
export interface MonitorMuxOptions {
  /** Clock of the join grace and reopen timers; default the real clock. */
  clock?: Clock;
  log?: Logger;
  /**
   * Backstop of a watch joining a running stream whose view does not hold its connection UP: the next hop sends
   * an UPDATE after every successful Request, but under a burst of Requests it trails the reply by seconds, so
   * the watch waits for it; only after this long does it take the view as it is. Default 30 000 ms.
   */
  joinGraceMs?: number;
  /** How long the reopen after a break may take to deliver its state transfer; default 2 000 ms. */
  reopenTimeoutMs?: number;
  /**
   * How long a shared stream stays open after its last watch went, for the next watch to join; default 0 (it is
   * cancelled at once). `close()` of the source ends the lingering streams.
   */
  idleMs?: number;
}

/** A shared monitor source: the number of shared streams, and `close()` to end those lingering without a watch. */
export type SharedMonitorSource = MonitorSource & { readonly streams: number; close(): void };

type Item = ConnectionEvent | Error | "fallback";

/** One watch's view of a shared stream: a queue of the events routed to it. */
class Subscriber {
  private readonly queue: Item[] = [];
  private wake: (() => void) | undefined;
  /** Waiting for its first state transfer: "feed" (the stream's), or "join" (its connection to show up). */
  pending: "feed" | "join" | undefined = "feed";
  grace: Timer | undefined;

  constructor(readonly id: string) {}

  push(item: Item): void {
    if (item instanceof Error || item === "fallback") this.stopGrace();
    this.queue.push(item);
    this.wake?.();
  }

  /** Hands over the first state transfer: with `conn`, or without it. */
  initial(conn: Connection | undefined): void {
    this.pending = undefined;
    this.stopGrace();
    this.push(event(ConnectionEventType.INITIAL_STATE_TRANSFER, conn));
  }

  stopGrace(): void {
    this.grace?.stop();
    this.grace = undefined;
  }

  async *events(signal: AbortSignal): AsyncGenerator<ConnectionEvent, "fallback" | undefined> {
    const onAbort = (): void => this.wake?.();
    signal.addEventListener("abort", onAbort);
    try {
      for (;;) {
        if (signal.aborted) return undefined;
        const item = this.queue.shift();
        if (item === "fallback") return item;
        if (item instanceof Error) throw item;
        if (item) {
          yield item;
          continue;
        }
        await new Promise<void>((r) => (this.wake = r));
        this.wake = undefined;
      }
    } finally {
      signal.removeEventListener("abort", onAbort);
    }
  }
}

function event(type: ConnectionEventType, conn: Connection | undefined): ConnectionEvent {
  return create(ConnectionEventSchema, { type, connections: conn ? { [conn.id]: conn } : {} });
}

const unwell = (c: Connection): boolean => c.state === State.DOWN || c.state === State.REFRESH_REQUESTED;

/** The shared stream of one next hop and segment name, and the watches subscribed to it. */
class Feed {
  readonly subs = new Map<string, Set<Subscriber>>();
  /** The next hop's connections carrying our segment, by its id (our side's connection id). */
  private readonly view = new Map<string, Connection>();
  private live = false;
  private running = false;
  private stopper = new AbortController();
  /** Runs while the stream lingers without a watch (`idleMs`). */
  private idle: Timer | undefined;
  /** The peer refused the name-only selector: every watch opens its own stream until the last one goes. */
  unshared = false;
  size = 0;

  constructor(
    private readonly open: MonitorSource,
    readonly url: string,
    private readonly name: string,
    private readonly opts: Required<MonitorMuxOptions>,
    private readonly onIdle: (f: Feed) => void,
    private readonly lingering: () => boolean,
  ) {}

  add(sub: Subscriber): void {
    this.idle?.stop();
    this.idle = undefined;
    this.size++;
    const set = this.subs.get(sub.id) ?? new Set();
    set.add(sub);
    this.subs.set(sub.id, set);
    if (this.unshared) {
      sub.push("fallback");
      return;
    }
    if (this.live) this.join(sub);
    if (!this.running) {
      this.running = true;
      this.run()
        .catch((err: unknown) => this.opts.log.error({ url: this.url, err }, `${ELEMENT}: shared monitor stream failed`))
        .finally(() => {
          this.running = false;
        });
    }
  }

  remove(sub: Subscriber): void {
    sub.stopGrace();
    const set = this.subs.get(sub.id);
    if (!set?.delete(sub)) return;
    this.size--;
    if (set.size === 0) this.subs.delete(sub.id);
    if (this.size > 0) return;
    if (this.running && this.opts.idleMs > 0 && this.lingering()) {
      this.idle = this.opts.clock.setTimer(this.opts.idleMs, () => {
        this.idle = undefined;
        if (this.size === 0) this.end();
      });
      return;
    }
    // The last watch went: one reset for the whole stream.
    this.end();
  }

  /** Cancels the stream (one reset) and leaves the source's map; a lingering stream ends here too. */
  end(): void {
    this.idle?.stop();
    this.idle = undefined;
    this.stopper.abort();
    this.onIdle(this);
  }

  /** A watch joins a running stream: its state transfer comes from our view once that holds its connection UP. */
  private join(sub: Subscriber): void {
    const conn = this.view.get(sub.id);
    if (conn && !unwell(conn)) {
      sub.initial(conn);
      return;
    }
    sub.pending = "join";
    sub.grace = this.opts.clock.setTimer(this.opts.joinGraceMs, () => {
      if (sub.pending === "join") sub.initial(this.view.get(sub.id));
    });
  }

  /** The id of our segment in `conn`'s path, or undefined when the path does not carry our name. */
  private ourId(conn: Connection): string | undefined {
    return conn.path?.pathSegments.find((s) => s.name === this.name)?.id || undefined;
  }

  private each(fn: (sub: Subscriber) => void): void {
    for (const set of this.subs.values()) for (const s of [...set]) fn(s);
  }

  private async run(): Promise<void> {
    const selector = create(MonitorScopeSelectorSchema, { pathSegments: [{ name: this.name }] });
    let reopening = false;
    for (;;) {
      const stopper = new AbortController();
      this.stopper = stopper;
      if (this.size === 0) {
        this.end();
        return;
      }
      // A reopen that hangs (a peer that is gone without a word) counts as failed.
      let timer = reopening ? this.opts.clock.setTimer(this.opts.reopenTimeoutMs, () => stopper.abort()) : undefined;
      let failure: Error = new StatusError(Code.Unavailable, `${ELEMENT}: the monitor stream of ${this.url} ended`);
      let delivered = false;
      try {
        for await (const ev of this.open(this.url, selector, stopper.signal)) {
          if (ev.type === ConnectionEventType.INITIAL_STATE_TRANSFER && !delivered) {
            timer?.stop();
            timer = undefined;
            this.transfer(ev, reopening);
            delivered = true;
          } else if (delivered) {
            this.apply(ev);
          }
        }
      } catch (err) {
        failure = err instanceof Error ? err : new Error(String(err));
      } finally {
        timer?.stop();
      }
      this.live = false;
      if (this.size === 0) {
        // Ended while lingering (or cancelled by its last watch): nobody to tell.
        this.view.clear();
        this.end();
        return;
      }
      // Refused (upstream's policy wants an id), or a state transfer over the receive limit: one stream per watch.
      if (!delivered && (isStatusError(failure, Code.PermissionDenied) || isStatusError(failure, Code.ResourceExhausted))) {
        this.opts.log.info(
          { url: this.url, err: failure },
          `${ELEMENT}: no shared monitor stream at this next hop; one stream per connection`,
        );
        this.unshared = true;
        this.each((s) => s.push("fallback"));
        return;
      }
      if (delivered && !stopper.signal.aborted && !isStatusError(failure, Code.Unimplemented)) {
        // A stream that worked broke (GOAWAY, a transport error, a peer restart): reopen once and let the new
        // state transfer tell which connections the peer still holds.
        this.opts.log.info({ url: this.url, err: failure }, `${ELEMENT}: shared monitor stream broke; reopening it`);
        this.each((s) => {
          s.stopGrace();
          s.pending = "feed";
        });
        reopening = true;
        continue;
      }
      this.view.clear();
      // Nothing to reopen: every watch sees the stream lost (or not served), as its own stream would have.
      this.each((s) => s.push(failure));
      this.onIdle(this);
      return;
    }
  }

  /** A state transfer of the (re)opened stream: the authoritative view for every watch waiting for one. */
  private transfer(ev: ConnectionEvent, reopened: boolean): void {
    const before = new Map(this.view);
    this.view.clear();
    for (const c of Object.values(ev.connections)) {
      const id = this.ourId(c);
      if (id) this.view.set(id, c);
    }
    this.live = true;
    this.each((s) => {
      const conn = this.view.get(s.id);
      if (s.pending !== undefined) {
        if (!reopened || s.pending === "join" || !before.has(s.id)) {
          s.initial(conn);
          return;
        }
      }
      // A watch that saw its connection before the break: lost if the peer no longer holds it, else as updated.
      if (!conn)
        s.push(new StatusError(Code.Unavailable, `${ELEMENT}: the next hop lost the connection while its monitor stream was reopened`));
      else if (unwell(conn)) s.push(event(ConnectionEventType.UPDATE, conn));
      s.pending = undefined;
    });
  }

  private apply(ev: ConnectionEvent): void {
    for (const c of Object.values(ev.connections)) {
      const id = this.ourId(c);
      if (!id) continue;
      if (ev.type === ConnectionEventType.DELETE) this.view.delete(id);
      else this.view.set(id, c);
      for (const s of [...(this.subs.get(id) ?? [])]) {
        if (s.pending === "join") {
          // A DELETE may be of the connection's previous life; only an UPDATE settles a joining watch early.
          if (ev.type === ConnectionEventType.UPDATE) s.initial(c);
        } else if (s.pending === undefined) {
          s.push(event(ev.type, c));
        }
      }
    }
  }
}

/** The single path segment `{name, id}` a heal watch selects, or undefined for any other selector. */
function watchedSegment(selector: MonitorScopeSelector): { name: string; id: string } | undefined {
  const seg = selector.pathSegments[0];
  if (selector.pathSegments.length !== 1 || selector.networkServices.length > 0 || !seg?.name || !seg.id || seg.token) return undefined;
  return { name: seg.name, id: seg.id };
}

/**
 * Wraps `open` (one MonitorConnections stream per call) so that the watches of one next hop and segment name share
 * one stream; a selector other than heal's `[{name, id}]` gets its own stream as before.
 */
export function sharedMonitorSource(open: MonitorSource, opts: MonitorMuxOptions = {}): SharedMonitorSource {
  const resolved: Required<MonitorMuxOptions> = {
    clock: opts.clock ?? realClock,
    log: opts.log ?? silentLogger,
    joinGraceMs: opts.joinGraceMs ?? 30_000,
    reopenTimeoutMs: opts.reopenTimeoutMs ?? 2_000,
    idleMs: opts.idleMs ?? 0,
  };
  const feeds = new Map<string, Feed>();
  let closed = false;
  const source = async function* (url: string, selector: MonitorScopeSelector, signal: AbortSignal): AsyncGenerator<ConnectionEvent> {
    const seg = watchedSegment(selector);
    if (!seg) {
      yield* open(url, selector, signal);
      return;
    }
    const key = `${seg.name}\u0000${url}`;
    let feed = feeds.get(key);
    if (!feed) {
      feed = new Feed(
        open,
        url,
        seg.name,
        resolved,
        (f) => {
          if (feeds.get(key) === f) feeds.delete(key);
        },
        () => !closed,
      );
      feeds.set(key, feed);
    }
    const sub = new Subscriber(seg.id);
    feed.add(sub);
    try {
      const how = yield* sub.events(signal);
      if (how === "fallback" && !signal.aborted) yield* open(url, selector, signal);
    } finally {
      feed.remove(sub);
    }
  };
  // A getter (Object.assign would copy the count once, at creation).
  Object.defineProperty(source, "streams", { get: () => feeds.size });
  return Object.assign(source as typeof source & { readonly streams: number }, {
    close() {
      closed = true;
      // Streams with watches end as their watches do (the owner ends those); lingering ones end now.
      for (const f of [...feeds.values()]) if (f.size === 0) f.end();
    },
  });
}
