/**
 * The allocation bitmap of one address range (after Alcor's per-range bitmaps). Ranges up to 2^24 addresses
 * keep a dense bit array; larger ones (IPv6, the MAC suffix space) keep the set of taken offsets, because
 * they are never close to full. `first` hands out the lowest free offset (IPv4, small ranges: predictable,
 * compact); `random` probes random offsets (IPv6 and MACs: unguessable, and two replicas that share a store
 * rarely pick the same one).
 */
import { randomBytes } from "node:crypto";

/** How `RangeBitmap.take` picks an offset. */
export type AllocationStrategy = "first" | "random";

/** Ranges up to this many offsets use a dense bit array. */
export const DENSE_LIMIT = 1n << 24n;

/** Random probes before a dense range falls back to a scan from a random word. */
const RANDOM_PROBES = 16;

/** A set of taken offsets in `[0, size)` with first-free or random allocation. */
export class RangeBitmap {
  /** Number of offsets in the range. */
  readonly size: bigint;
  private readonly strategy: AllocationStrategy;
  private readonly words: Uint32Array | undefined;
  private readonly sparse: Set<bigint> | undefined;
  private used = 0n;
  /** Every offset below `hint` is taken: first-free scans start here. */
  private hint = 0n;

  constructor(size: bigint, strategy: AllocationStrategy) {
    if (size <= 0n) throw new RangeError("bitmap: empty range");
    this.size = size;
    this.strategy = strategy;
    if (size <= DENSE_LIMIT) this.words = new Uint32Array(Number((size + 31n) / 32n));
    else this.sparse = new Set();
  }

  /** Offsets still free. */
  get free(): bigint {
    return this.size - this.used;
  }

  /** Whether `offset` is taken. */
  has(offset: bigint): boolean {
    if (this.words !== undefined) {
      const i = Number(offset);
      return ((this.words[i >>> 5] ?? 0) & (1 << (i & 31))) !== 0;
    }
    return this.sparse?.has(offset) ?? false;
  }

  /** Marks `offset` taken; false when it already was (or lies outside the range). */
  mark(offset: bigint): boolean {
    if (offset < 0n || offset >= this.size || this.has(offset)) return false;
    if (this.words !== undefined) {
      const i = Number(offset);
      this.words[i >>> 5] = (this.words[i >>> 5] ?? 0) | (1 << (i & 31));
    } else this.sparse?.add(offset);
    this.used++;
    return true;
  }

  /** Frees `offset`; false when it was not taken. */
  clear(offset: bigint): boolean {
    if (offset < 0n || offset >= this.size || !this.has(offset)) return false;
    if (this.words !== undefined) {
      const i = Number(offset);
      this.words[i >>> 5] = (this.words[i >>> 5] ?? 0) & ~(1 << (i & 31));
    } else this.sparse?.delete(offset);
    this.used--;
    if (offset < this.hint) this.hint = offset;
    return true;
  }

  /**
   * Takes a free offset by the strategy and returns it, or undefined when the range is full. `spread` makes
   * `first` start its scan at a random offset (wrapping around): writers that share a store and take
   * addresses at the same moment then rarely pick the same one.
   */
  take(spread = false): bigint | undefined {
    if (this.used >= this.size) return undefined;
    const off =
      this.strategy === "random"
        ? this.randomFree()
        : spread && this.words !== undefined
          ? this.firstFreeFrom(Math.floor(Math.random() * Number(this.size)))
          : this.firstFree();
    if (off !== undefined) this.mark(off);
    return off;
  }

  private firstFree(): bigint | undefined {
    if (this.words === undefined) {
      for (let o = this.hint; o < this.size; o++) {
        if (!this.has(o)) {
          this.hint = o;
          return o;
        }
      }
      return undefined;
    }
    const n = this.words.length;
    for (let w = Number(this.hint) >>> 5; w < n; w++) {
      const word = this.words[w] ?? 0;
      if (word === 0xffffffff) continue;
      const bit = 31 - Math.clz32(~word & (word + 1));
      const off = BigInt(w * 32 + bit);
      if (off >= this.size) return undefined;
      this.hint = off;
      return off;
    }
    return undefined;
  }

  /** The first free offset at or after `start`, wrapping around once (dense ranges). */
  private firstFreeFrom(start: number): bigint | undefined {
    const words = this.words;
    if (words === undefined) return this.firstFree();
    const n = words.length;
    const size = Number(this.size);
    const w0 = start >>> 5;
    for (let k = 0; k <= n; k++) {
      const w = (w0 + k) % n;
      let word = words[w] ?? 0;
      // The first visit of the start word skips the bits below `start`; the last visit (k = n) covers them.
      if (k === 0) word = (word | ((1 << (start & 31)) - 1)) >>> 0;
      while (word !== 0xffffffff) {
        const bit = 31 - Math.clz32(~word & (word + 1));
        const off = w * 32 + bit;
        if (off < size) return BigInt(off);
        word = (word | (1 << bit)) >>> 0;
      }
    }
    return undefined;
  }

  private randomFree(): bigint | undefined {
    if (this.words === undefined) {
      // A sparse range is huge and nearly empty: a few probes always land on a free offset in practice.
      for (let i = 0; i < 64; i++) {
        const off = randomBelow(this.size);
        if (!this.has(off)) return off;
      }
      return this.firstFree();
    }
    const size = Number(this.size);
    for (let i = 0; i < RANDOM_PROBES; i++) {
      const off = Math.floor(Math.random() * size);
      if (!this.has(BigInt(off))) return BigInt(off);
    }
    // Crowded: scan every word once, starting at a random one, so a free offset is found if one exists.
    const n = this.words.length;
    const start = Math.floor(Math.random() * n);
    for (let k = 0; k < n; k++) {
      const w = (start + k) % n;
      const word = this.words[w] ?? 0;
      if (word === 0xffffffff) continue;
      for (let bit = 0; bit < 32; bit++) {
        const off = w * 32 + bit;
        if (off < size && (word & (1 << bit)) === 0) return BigInt(off);
      }
    }
    return undefined;
  }
}

/** A uniform-enough random bigint in `[0, n)` (the modulo bias is below 2^-64 for ranges up to 2^64). */
export function randomBelow(n: bigint): bigint {
  const bytes = randomBytes(16);
  return BigInt(`0x${bytes.toString("hex")}`) % n;
}
