import { connectivityState } from "@grpc/grpc-js";
import { expect } from "chai";
import { MockClock } from "../clock/index.js";
import type { Channel } from "../grpc/index.js";
import { ChannelPool } from "./index.js";

// Nothing listens there: channels connect lazily, and these never make a call.
const URL_A = "tcp://127.0.0.1:9";
const URL_B = "tcp://127.0.0.1:10";
const shutDown = (ch: Channel): boolean => ch.grpcClient.getChannel().getConnectivityState(false) === connectivityState.SHUTDOWN;

describe("dialer: ChannelPool", () => {
  it("shares one channel per URL and closes it at the last release (no idleMs)", () => {
    const pool = new ChannelPool();
    const a = pool.acquire(URL_A);
    expect(pool.acquire(URL_A)).to.equal(a);
    pool.release(URL_A);
    expect(shutDown(a)).to.equal(false);
    pool.release(URL_A);
    expect([shutDown(a), pool.size()]).to.deep.equal([true, 0]);
    const again = pool.acquire(URL_A);
    expect(again).to.not.equal(a);
    pool.closeAll();
    expect(shutDown(again)).to.equal(true);
  });

  it("with idleMs keeps a released channel for the next user, and closes it after idleMs without one", async () => {
    const clock = new MockClock();
    const pool = new ChannelPool({}, { idleMs: 30_000, clock });
    const a = pool.acquire(URL_A);
    pool.release(URL_A);
    await clock.advance(29_000);
    // One connection at a time: the next one gets the same channel (and its HTTP/2 connection).
    expect(pool.acquire(URL_A)).to.equal(a);
    expect(clock.pending(), "the idle timer stopped").to.equal(0);
    pool.release(URL_A);
    await clock.advance(29_000);
    expect([shutDown(a), pool.size()], "the timer started over at the last release").to.deep.equal([false, 1]);
    await clock.advance(1_000);
    expect([shutDown(a), pool.size(), clock.pending()]).to.deep.equal([true, 0, 0]);

    // closeAll ends lingering channels and their timers at once.
    const b = pool.acquire(URL_B);
    pool.release(URL_B);
    const c = pool.acquire(URL_A);
    pool.closeAll();
    expect([shutDown(b), shutDown(c), pool.size(), clock.pending()]).to.deep.equal([true, true, 0, 0]);
  });

  it("does not keep a channel in TRANSIENT_FAILURE: the next user dials afresh instead of waiting out its backoff", async () => {
    const clock = new MockClock();
    const pool = new ChannelPool({}, { idleMs: 30_000, clock });
    const a = pool.acquire(URL_A);
    // Nothing listens at URL_A: the connection attempt is refused and the channel backs off.
    const ch = a.grpcClient.getChannel();
    ch.getConnectivityState(true);
    for (
      let state = ch.getConnectivityState(false);
      state !== connectivityState.TRANSIENT_FAILURE;
      state = ch.getConnectivityState(false)
    ) {
      await new Promise<void>((resolve) => ch.watchConnectivityState(state, Date.now() + 5_000, () => resolve()));
    }
    pool.release(URL_A);
    expect([shutDown(a), pool.size(), clock.pending()]).to.deep.equal([true, 0, 0]);
    pool.closeAll();
  });
});
