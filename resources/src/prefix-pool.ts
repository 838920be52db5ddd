/**
 * The vL3 prefix pool behind upstream `ipam.IPAM/ManagePrefixes` (docs/wire-compatibility.md#vl3-ipam): a pool CIDR
 * cut into sub-prefixes of one size, tracked by the same `RangeBitmap` the subnets use (one bit per sub-prefix).
 * ALLOCATE returns the requested prefix when it lies in the pool and is free, else the lowest free sub-prefix that
 * overlaps none of `exclude_prefixes`; DELETE frees a prefix allocated on the same stream; when the stream ends
 * everything it allocated returns to the pool; UNDEFINED ends the stream with InvalidArgument.
 */
import { create } from "@bufbuild/protobuf";
import { type PrefixRequest, type PrefixResponse, PrefixResponseSchema, Type } from "@nsm-ts/api/ipam";
import { Code, fail } from "@nsm-ts/base/status";
import { type Cidr, cidrCovers, cidrOverlaps, formatCidr, requireCidr } from "./address.js";
import { RangeBitmap } from "./bitmap.js";

/** Options of `createPrefixPool`. */
export interface PrefixPoolOptions {
  /** The pool, e.g. "169.254.0.0/16". */
  prefix: string;
  /** Length of the sub-prefixes handed out, e.g. 24. Default: the pool's length + 8 (at most the address width). */
  prefixLength?: number;
  /** Server-side exclusions: never handed out, and appended to every response's `exclude_prefixes`. */
  excludePrefixes?: readonly string[];
}

/** A held prefix and the sub-prefix slots it occupies. */
export interface PrefixLease {
  readonly prefix: string;
  readonly slots: readonly bigint[];
}

/** A vL3 prefix pool. */
export class PrefixPool {
  readonly pool: Cidr;
  readonly prefixLength: number;
  private readonly bitmap: RangeBitmap;
  private readonly slotSize: bigint;
  private readonly serverExcludes: readonly string[];

  constructor(opts: PrefixPoolOptions) {
    this.pool = requireCidr(opts.prefix, "prefix");
    const width = this.pool.family === 4 ? 32 : 128;
    this.prefixLength = opts.prefixLength ?? Math.min(width, this.pool.len + 8);
    if (this.prefixLength < this.pool.len || this.prefixLength > width) {
      fail(Code.InvalidArgument, `resources: prefixLength: ${this.prefixLength} does not fit the pool ${formatCidr(this.pool)}`);
    }
    if (this.prefixLength - this.pool.len > 24)
      fail(Code.InvalidArgument, `resources: prefixLength: more than 2^24 sub-prefixes in ${formatCidr(this.pool)}`);
    this.slotSize = 1n << BigInt(width - this.prefixLength);
    this.bitmap = new RangeBitmap(this.pool.size / this.slotSize, "first");
    this.serverExcludes = (opts.excludePrefixes ?? []).map((p, i) => formatCidr(requireCidr(p, `excludePrefixes[${i}]`)));
    for (const p of this.serverExcludes) for (const s of this.slotsOverlapping(requireCidr(p, "excludePrefixes"))) this.bitmap.mark(s);
  }

  /** Sub-prefixes still free. */
  get free(): bigint {
    return this.bitmap.free;
  }

  /** Allocates per the header comment; ResourceExhausted when no sub-prefix is free. */
  allocate(requested: string, exclude: readonly string[]): PrefixLease {
    const excluded = exclude.map((p, i) => requireCidr(p, `exclude_prefixes[${i}]`));
    if (requested !== "") {
      const want = requireCidr(requested, "prefix");
      if (cidrCovers(this.pool, want)) {
        const slots = this.slotsOverlapping(want);
        if (slots.every((s) => !this.bitmap.has(s))) {
          for (const s of slots) this.bitmap.mark(s);
          return { prefix: formatCidr(want), slots };
        }
      }
    }
    // Mark the excluded slots for the duration of one take, so the first-free scan skips them.
    const blocked = excluded.flatMap((c) => this.slotsOverlapping(c)).filter((s) => this.bitmap.mark(s));
    const slot = this.bitmap.take();
    for (const s of blocked) this.bitmap.clear(s);
    if (slot === undefined)
      fail(
        Code.ResourceExhausted,
        `resources: prefix: no free /${this.prefixLength} left in ${formatCidr(this.pool)} outside the excluded prefixes`,
      );
    return {
      prefix: formatCidr({
        family: this.pool.family,
        base: this.pool.base + slot * this.slotSize,
        len: this.prefixLength,
        size: this.slotSize,
      }),
      slots: [slot],
    };
  }

  /** Returns a lease's sub-prefixes to the pool. */
  release(lease: PrefixLease): void {
    for (const s of lease.slots) this.bitmap.clear(s);
  }

  /** Serves one ManagePrefixes stream (see the header comment). */
  async *serve(requests: AsyncIterable<PrefixRequest>): AsyncGenerator<PrefixResponse> {
    const held: PrefixLease[] = [];
    try {
      for await (const req of requests) {
        switch (req.type) {
          case Type.ALLOCATE: {
            const lease = this.allocate(req.prefix, req.excludePrefixes);
            held.push(lease);
            yield create(PrefixResponseSchema, { prefix: lease.prefix, excludePrefixes: [...req.excludePrefixes, ...this.serverExcludes] });
            break;
          }
          case Type.DELETE: {
            const i = held.findIndex((l) => l.prefix === req.prefix);
            const lease = held[i];
            if (lease !== undefined) {
              held.splice(i, 1);
              this.release(lease);
            }
            break;
          }
          default:
            fail(Code.InvalidArgument, `resources: type: request type ${req.type} is UNDEFINED`);
        }
      }
    } finally {
      for (const lease of held) this.release(lease);
    }
  }

  private slotsOverlapping(c: Cidr): bigint[] {
    if (!cidrOverlaps(this.pool, c)) return [];
    // biome-ignore lint/complexity/useMathMinMax: bigints, which Math.max/min do not take.
    const lo = (c.base > this.pool.base ? c.base : this.pool.base) - this.pool.base;
    // biome-ignore lint/complexity/useMathMinMax: bigints, which Math.max/min do not take.
    const end = c.base + c.size < this.pool.base + this.pool.size ? c.base + c.size : this.pool.base + this.pool.size;
    const hi = end - this.pool.base - 1n;
    const out: bigint[] = [];
    for (let s = lo / this.slotSize; s <= hi / this.slotSize; s++) out.push(s);
    return out;
  }
}

/** Creates a vL3 prefix pool. */
export function createPrefixPool(opts: PrefixPoolOptions): PrefixPool {
  return new PrefixPool(opts);
}
