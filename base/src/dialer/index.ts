/**
 * A pool of gRPC channels, one per target URL, shared by every connection to that URL and closed when the
 * last user releases it. Clients (connect, registry connect, heal's monitor client) acquire a channel per
 * connection instead of dialing per call.
 */
import { type Channel, type DialOptions, dial } from "../grpc/index.js";

interface Entry {
  channel: Channel;
  refs: number;
}

/** One channel per URL, reference counted. */
export class ChannelPool {
  private readonly entries = new Map<string, Entry>();
  constructor(private readonly opts: DialOptions = {}) {}

  /** A channel to `url`; call `release(url)` once for every `acquire`. */
  acquire(url: string): Channel {
    let e = this.entries.get(url);
    if (!e) {
      e = { channel: dial(url, this.opts), refs: 0 };
      this.entries.set(url, e);
    }
    e.refs++;
    return e.channel;
  }

  /** Gives a channel back; the last release closes it. */
  release(url: string): void {
    const e = this.entries.get(url);
    if (!e) return;
    if (--e.refs <= 0) {
      this.entries.delete(url);
      e.channel.close();
    }
  }

  /** Number of open channels (tests and metrics). */
  size(): number {
    return this.entries.size;
  }

  /** Closes every channel. */
  closeAll(): void {
    for (const e of this.entries.values()) e.channel.close();
    this.entries.clear();
  }
}
