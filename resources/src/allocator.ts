/**
 * Address allocators built on `RangeBitmap`: one per subnet (a bitmap per allocation pool, with the network,
 * broadcast and gateway addresses marked taken from the start) and one per MAC OUI (a random 24-bit suffix).
 * Taking or marking an address is synchronous, so concurrent allocations in one process never pick the same
 * address; the store's create-if-absent is what makes it unique across replicas.
 */
import { Code, fail } from "@nsm-ts/base/status";
import { type Cidr, cidrContains, formatCidr, formatIp, type Ip } from "./address.js";
import { type AllocationStrategy, RangeBitmap } from "./bitmap.js";

/** Ranges at most this big hand out the lowest free address even for IPv6. */
const SMALL_RANGE = 256n;

interface IpRange {
  readonly first: bigint;
  readonly last: bigint;
  readonly bitmap: RangeBitmap;
}

/** The allocation state of one subnet. */
export class SubnetAllocator {
  readonly subnetId: string;
  readonly cidr: Cidr;
  private readonly ranges: IpRange[];
  /** Reserved addresses and why, e.g. "gateway". */
  private readonly reserved = new Map<bigint, string>();

  /** `pools` are inclusive [first, last] pairs inside the CIDR; `gateway` may be undefined (no gateway). */
  constructor(subnetId: string, cidr: Cidr, gateway: bigint | undefined, pools: ReadonlyArray<readonly [bigint, bigint]>) {
    this.subnetId = subnetId;
    this.cidr = cidr;
    const last = cidr.base + cidr.size - 1n;
    // /31 and /32 (RFC 3021) and /127, /128 have no network or broadcast address to spare.
    if (cidr.size > 2n) {
      this.reserved.set(cidr.base, "the network address");
      if (cidr.family === 4) this.reserved.set(last, "the broadcast address");
    }
    if (gateway !== undefined) this.reserved.set(gateway, "the gateway");
    this.ranges = pools.map(([first, end]) => {
      const size = end - first + 1n;
      const strategy: AllocationStrategy = cidr.family === 4 || size <= SMALL_RANGE ? "first" : "random";
      const range = { first, last: end, bitmap: new RangeBitmap(size, strategy) };
      for (const r of this.reserved.keys()) if (r >= first && r <= end) range.bitmap.mark(r - first);
      return range;
    });
  }

  /** Addresses still free over every pool. */
  get free(): bigint {
    return this.ranges.reduce((n, r) => n + r.bitmap.free, 0n);
  }

  /** Takes a free address (pools in order), or undefined when every pool is full; `spread` as in `RangeBitmap.take`. */
  take(spread = false): bigint | undefined {
    for (const r of this.ranges) {
      const off = r.bitmap.take(spread);
      if (off !== undefined) return r.first + off;
    }
    return undefined;
  }

  /**
   * Checks that a caller may ask for `ip` specifically: inside the CIDR, not reserved, inside a pool. Fails
   * with InvalidArgument naming `field`.
   */
  check(ip: Ip, field: string): void {
    const where = `subnet "${this.subnetId}" (${formatCidr(this.cidr)})`;
    if (!cidrContains(this.cidr, ip)) fail(Code.InvalidArgument, `resources: ${field}: ${formatIp(ip)} is outside ${where}`);
    const why = this.reserved.get(ip.value);
    if (why !== undefined) fail(Code.InvalidArgument, `resources: ${field}: ${formatIp(ip)} is ${why} of ${where}`);
    if (this.rangeOf(ip.value) === undefined)
      fail(Code.InvalidArgument, `resources: ${field}: ${formatIp(ip)} is outside the allocation pools of ${where}`);
  }

  /** Marks an address taken; false when it already was or lies outside every pool. */
  mark(v: bigint): boolean {
    const r = this.rangeOf(v);
    return r?.bitmap.mark(v - r.first) === true;
  }

  /** Frees an address (reserved addresses stay taken). */
  clear(v: bigint): void {
    if (this.reserved.has(v)) return;
    const r = this.rangeOf(v);
    r?.bitmap.clear(v - r.first);
  }

  private rangeOf(v: bigint): IpRange | undefined {
    return this.ranges.find((r) => v >= r.first && v <= r.last);
  }
}

/** Random MAC suffixes under one OUI (24-bit suffix space, randomized probing). */
export class MacAllocator {
  readonly oui: bigint;
  private readonly bitmap = new RangeBitmap(1n << 24n, "random");

  constructor(oui: bigint) {
    this.oui = oui;
  }

  /** Takes a random free MAC under the OUI, or undefined when all 2^24 are taken. */
  take(): bigint | undefined {
    const s = this.bitmap.take();
    return s === undefined ? undefined : (this.oui << 24n) | s;
  }

  /** Whether `mac` lies under this OUI. */
  covers(mac: bigint): boolean {
    return mac >> 24n === this.oui;
  }

  /** Marks a MAC under the OUI taken; false when it already was. */
  mark(mac: bigint): boolean {
    return this.covers(mac) && this.bitmap.mark(mac & 0xffffffn);
  }

  /** Frees a MAC under the OUI. */
  clear(mac: bigint): void {
    if (this.covers(mac)) this.bitmap.clear(mac & 0xffffffn);
  }
}

/** Serialises async work per key (loading a subnet's bitmap) while different keys run in parallel. */
export class KeyedMutex {
  private readonly tails = new Map<string, Promise<unknown>>();

  /** Runs `fn` after every earlier `run` with the same key has settled. */
  async run<R>(key: string, fn: () => Promise<R>): Promise<R> {
    const prev = this.tails.get(key) ?? Promise.resolve();
    const next = prev.then(fn, fn);
    const tail = next.catch(() => undefined);
    this.tails.set(key, tail);
    try {
      return await next;
    } finally {
      if (this.tails.get(key) === tail) this.tails.delete(key);
    }
  }
}
