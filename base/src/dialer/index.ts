/**
 * A pool of gRPC channels, one per target URL, shared by every connection to that URL and closed when the
 * last user releases it (or, with `idleMs`, once it has had no user for that long). Clients (connect, registry
 * connect, heal's monitor client) acquire a channel per connection instead of dialing per call.
 */
import { connectivityState } from "@grpc/grpc-js";
import { type Clock, realClock, type Timer } from "../clock/index.js";
import { type Channel, type DialOptions, dial } from "../grpc/index.js";

interface Entry {
  channel: Channel;
  refs: number;
  /** Runs while the channel lingers without a user (`idleMs`). */
  idle?: Timer | undefined;
}

/** How the pool keeps channels. */
export interface ChannelPoolOptions {
  /**
   * How long a channel stays open after its last release; default 0 (closed at once). Closing a channel
   * drops its HTTP/2 connection, so a caller whose connections come and go one at a time would otherwise dial
   * (connect, HTTP/2 handshake, name resolution) for every one.
   */
  idleMs?: number;
  /** Clock of the idle timers; default the real clock. */
  clock?: Clock;
}

/**
 * Whether a channel without users is worth keeping: not one in TRANSIENT_FAILURE, which fails calls at once until
 * its reconnect backoff ends; a new channel tries at once, and a peer restarted at the same URL is reached on the
 * first attempt (as without `idleMs`).
 */
function worthKeeping(ch: Channel): boolean {
  const state = ch.grpcClient.getChannel().getConnectivityState(false);
  return state !== connectivityState.TRANSIENT_FAILURE && state !== connectivityState.SHUTDOWN;
}

/** One channel per URL, reference counted. */
export class ChannelPool {
  private readonly entries = new Map<string, Entry>();
  private readonly idleMs: number;
  private readonly clock: Clock;
  constructor(
    private readonly opts: DialOptions = {},
    poolOpts: ChannelPoolOptions = {},
  ) {
    this.idleMs = poolOpts.idleMs ?? 0;
    this.clock = poolOpts.clock ?? realClock;
  }

  /** A channel to `url`; call `release(url)` once for every `acquire`. */
  acquire(url: string): Channel {
    let e = this.entries.get(url);
    if (e && e.refs <= 0 && !worthKeeping(e.channel)) {
      this.drop(url, e);
      e = undefined;
    }
    if (!e) {
      e = { channel: dial(url, this.opts), refs: 0 };
      this.entries.set(url, e);
    }
    e.idle?.stop();
    e.idle = undefined;
    e.refs++;
    return e.channel;
  }

  /** Gives a channel back; the last release closes it (after `idleMs`, when set). */
  release(url: string): void {
    const e = this.entries.get(url);
    if (!e) return;
    if (--e.refs > 0) return;
    if (this.idleMs <= 0 || !worthKeeping(e.channel)) {
      this.drop(url, e);
      return;
    }
    e.idle?.stop();
    e.idle = this.clock.setTimer(this.idleMs, () => {
      e.idle = undefined;
      if (e.refs <= 0 && this.entries.get(url) === e) this.drop(url, e);
    });
  }

  private drop(url: string, e: Entry): void {
    e.idle?.stop();
    this.entries.delete(url);
    e.channel.close();
  }

  /** Number of open channels, lingering ones included (tests and metrics). */
  size(): number {
    return this.entries.size;
  }

  /** Closes every channel. */
  closeAll(): void {
    for (const e of this.entries.values()) {
      e.idle?.stop();
      e.channel.close();
    }
    this.entries.clear();
  }
}
