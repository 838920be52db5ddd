/**
 * Injectable time. Everything in nsm-ts that waits, expires or refreshes reads time and sets timers through a
 * `Clock`, so tests drive it with `MockClock` and run in milliseconds instead of minutes.
 */

/** A cancellable timer handle. */
export interface Timer {
  /** Stops the timer; returns false when it already fired or was stopped. */
  stop(): boolean;
}

/** Source of time and timers. */
export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number;
  /** Calls `fn` once after `ms` milliseconds. */
  setTimer(ms: number, fn: () => void): Timer;
  /** Resolves after `ms`; rejects with the signal's reason when `signal` aborts first. */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

let realPending = 0;

/**
 * Timers of `realClock` in this process that are set and have neither fired nor been stopped. Node cannot count
 * them (they are unref'd, so `process.getActiveResourcesInfo()` leaves them out); the programs report this as
 * `nsm_clock_timers_pending`, which must return to its level once the connections that set them are gone.
 */
export function realTimersPending(): number {
  return realPending;
}

/** The real clock (Date.now and setTimeout). Timers do not keep the process alive on their own. */
export const realClock: Clock = {
  now: () => Date.now(),
  setTimer(ms, fn) {
    let done = false;
    realPending++;
    const t = setTimeout(
      () => {
        done = true;
        realPending--;
        fn();
      },
      Math.max(0, ms),
    );
    t.unref();
    return {
      stop() {
        if (done) return false;
        done = true;
        realPending--;
        clearTimeout(t);
        return true;
      },
    };
  },
  sleep: (ms, signal) => sleepOn(realClock, ms, signal),
};

/** `clock.sleep` for any Clock built on `setTimer`: resolves after `ms`, rejects with the signal's reason on abort. */
export function sleepOn(clock: Clock, ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const onAbort = (): void => {
      timer.stop();
      reject(signal?.reason);
    };
    const timer = clock.setTimer(ms, () => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    });
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

interface MockTimer {
  at: number;
  seq: number;
  fn: () => void;
  active: boolean;
}

/**
 * A clock that only moves when told to. `advance(ms)` fires due timers in time order (timers set by fired
 * timers fire too if due) and yields to the microtask queue between them, so async chains triggered by a
 * timer settle before the next one runs.
 */
export class MockClock implements Clock {
  private t: number;
  private seq = 0;
  private timers: MockTimer[] = [];
  private waiters: Array<() => void> = [];

  constructor(start: number | Date = Date.UTC(2026, 0, 1)) {
    this.t = typeof start === "number" ? start : start.getTime();
  }

  now(): number {
    return this.t;
  }

  setTimer(ms: number, fn: () => void): Timer {
    const timer: MockTimer = { at: this.t + Math.max(0, ms), seq: this.seq++, fn, active: true };
    this.timers.push(timer);
    for (const w of this.waiters.splice(0)) w();
    return {
      stop: () => {
        if (!timer.active) return false;
        timer.active = false;
        this.timers = this.timers.filter((x) => x !== timer);
        return true;
      },
    };
  }

  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    return sleepOn(this, ms, signal);
  }

  /** Number of timers not yet fired or stopped (tests assert 0 at the end). */
  pending(): number {
    return this.timers.length;
  }

  /** Time of the next timer, or undefined. */
  nextAt(): number | undefined {
    return this.timers.reduce<number | undefined>((m, x) => (m === undefined || x.at < m ? x.at : m), undefined);
  }

  /** Moves time forward by `ms`, firing every timer that falls due on the way. */
  async advance(ms: number): Promise<void> {
    const end = this.t + ms;
    await settle();
    for (;;) {
      const next = this.popDue(end);
      if (!next) break;
      this.t = Math.max(this.t, next.at);
      next.fn();
      await settle();
    }
    this.t = end;
    await settle();
  }

  /** Sets the absolute time (only forward), firing due timers. */
  async set(to: number | Date): Promise<void> {
    const target = typeof to === "number" ? to : to.getTime();
    await this.advance(Math.max(0, target - this.t));
  }

  /** Resolves once at least `n` timers are pending: lets a test wait for background work to arm its timer. */
  async untilPending(n = 1): Promise<void> {
    while (this.timers.length < n) await new Promise<void>((r) => this.waiters.push(r));
  }

  private popDue(end: number): MockTimer | undefined {
    let best: MockTimer | undefined;
    for (const x of this.timers) {
      if (x.at <= end && (!best || x.at < best.at || (x.at === best.at && x.seq < best.seq))) best = x;
    }
    if (best) {
      best.active = false;
      this.timers = this.timers.filter((x) => x !== best);
    }
    return best;
  }
}

/** Lets pending promise callbacks and I/O callbacks run (a few macrotask turns). */
async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise<void>((r) => setImmediate(r));
}

export { DeadlineQueue } from "./deadlines.js";
