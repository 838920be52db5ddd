/**
 * Many deadlines on one timer: a min-heap of (time, key) with a single clock timer armed for the earliest. Setting
 * a key again replaces its deadline (the old heap slot is left behind and skipped when it surfaces, and the heap is
 * rebuilt when such slots outnumber the live ones), so a refresh costs O(log n) and never scans every key.
 */
import type { Clock, Timer } from "./index.js";

interface Slot<K> {
  at: number;
  key: K;
  seq: number;
}

/** Deadlines keyed by `K`, fired through `onDue(key)` at their time on `clock`, all sharing one timer. */
export class DeadlineQueue<K> {
  private heap: Slot<K>[] = [];
  private readonly live = new Map<K, Slot<K>>();
  private timer: Timer | undefined;
  private armedAt = Number.POSITIVE_INFINITY;
  private seq = 0;
  private closed = false;

  constructor(
    private readonly clock: Clock,
    private readonly onDue: (key: K) => void,
  ) {}

  /** Number of keys with a deadline. */
  get size(): number {
    return this.live.size;
  }

  /** The deadline of `key` (epoch ms), if it has one. */
  get(key: K): number | undefined {
    return this.live.get(key)?.at;
  }

  /** Gives `key` the deadline `atMs` (epoch ms), replacing any earlier one. */
  set(key: K, atMs: number): void {
    if (this.closed) return;
    const slot: Slot<K> = { at: atMs, key, seq: this.seq++ };
    this.live.set(key, slot);
    this.push(slot);
    if (this.heap.length > 64 && this.heap.length > 2 * this.live.size) this.rebuild();
    if (atMs < this.armedAt) this.arm();
  }

  /** Removes the deadline of `key`; true when it had one. */
  delete(key: K): boolean {
    // The heap slot stays until it surfaces (or a rebuild); the one timer is not re-armed for it.
    return this.live.delete(key);
  }

  /** Drops every deadline and stops the timer; later `set`s are ignored. */
  close(): void {
    this.closed = true;
    this.live.clear();
    this.heap = [];
    this.timer?.stop();
    this.timer = undefined;
    this.armedAt = Number.POSITIVE_INFINITY;
  }

  private arm(): void {
    this.timer?.stop();
    this.timer = undefined;
    this.armedAt = Number.POSITIVE_INFINITY;
    const top = this.peekLive();
    if (top === undefined) return;
    this.armedAt = top.at;
    this.timer = this.clock.setTimer(top.at - this.clock.now(), () => {
      this.timer = undefined;
      this.armedAt = Number.POSITIVE_INFINITY;
      this.fire();
    });
  }

  private fire(): void {
    const now = this.clock.now();
    const due: K[] = [];
    for (let top = this.peekLive(); top !== undefined && top.at <= now; top = this.peekLive()) {
      this.pop();
      this.live.delete(top.key);
      due.push(top.key);
    }
    // Re-armed before the callbacks run, so a callback that sets a new deadline finds the queue consistent.
    if (!this.closed) this.arm();
    for (const k of due) this.onDue(k);
  }

  /** The earliest slot that is still a key's current deadline, discarding stale slots on the way. */
  private peekLive(): Slot<K> | undefined {
    for (;;) {
      const top = this.heap[0];
      if (top === undefined) return undefined;
      if (this.live.get(top.key) === top) return top;
      this.pop();
    }
  }

  private rebuild(): void {
    this.heap = [...this.live.values()];
    for (let i = (this.heap.length >> 1) - 1; i >= 0; i--) this.down(i);
  }

  private push(slot: Slot<K>): void {
    const h = this.heap;
    h.push(slot);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      const parent = h[p] as Slot<K>;
      if (!less(slot, parent)) break;
      h[i] = parent;
      i = p;
    }
    h[i] = slot;
  }

  private pop(): void {
    const h = this.heap;
    const last = h.pop();
    if (last === undefined || h.length === 0) return;
    h[0] = last;
    this.down(0);
  }

  private down(start: number): void {
    const h = this.heap;
    const n = h.length;
    let i = start;
    const item = h[i] as Slot<K>;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) break;
      const r = l + 1;
      const c = r < n && less(h[r] as Slot<K>, h[l] as Slot<K>) ? r : l;
      const child = h[c] as Slot<K>;
      if (!less(child, item)) break;
      h[i] = child;
      i = c;
    }
    h[i] = item;
  }
}

function less<K>(a: Slot<K>, b: Slot<K>): boolean {
  return a.at < b.at || (a.at === b.at && a.seq < b.seq);
}
