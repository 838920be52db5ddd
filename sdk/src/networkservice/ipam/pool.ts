/**
 * An address pool for point-to-point links: one or more prefixes (IPv4 and/or IPv6) from which it hands out
 * host addresses (/32, /128) lowest first, skipping addresses in use and any excluded prefixes the request
 * carries. A lease holds one dst/src pair per address family the pool has.
 */
import { type Cidr, cidrCovers, cidrLast, cidrOverlaps, formatCidr, formatIp, parseCidr } from "@nsm-ts/base/netaddr";
import { Code, fail } from "@nsm-ts/base/status";

/** One point-to-point pair: `dst` for the endpoint side, `src` for the client side, both `addr/32` or `addr/128`. */
export interface AddressPair {
  readonly family: 4 | 6;
  readonly dst: string;
  readonly src: string;
}

/** What one connection holds from the pool: a pair per address family of the pool. */
export interface Lease {
  readonly pairs: readonly AddressPair[];
}

interface Range {
  cidr: Cidr;
  used: Set<bigint>;
  /** Every address below this one is in use: scans start here, so filling a range stays linear overall. */
  low: bigint;
}

/** An excluded prefix as its first and last address. */
interface Span {
  first: bigint;
  last: bigint;
}

interface Held {
  range: Range;
  values: bigint[];
}

/** How prefixes are read here: a bare address is a host prefix (/32, /128), an IPv6 zone is dropped. */
const lenient = { bare: true, zone: true } as const;

/** A pool of host addresses carved from prefixes. */
export class AddressPool {
  private readonly ranges: Range[];
  private readonly held = new WeakMap<Lease, Held[]>();
  private inUse = 0;

  /** `cidrs`: prefixes to allocate from, tried in the given order within each family. */
  constructor(cidrs: readonly string[]) {
    if (cidrs.length === 0) throw new Error("ipam: an address pool needs at least one prefix");
    this.ranges = cidrs.map((c) => {
      const cidr = parseCidr(c, lenient);
      if (cidr === undefined) throw new Error(`ipam: invalid pool prefix "${c}"`);
      return { cidr, used: new Set<bigint>(), low: cidr.base };
    });
  }

  /** The address families this pool serves (4, 6 or both), in the order of first appearance. */
  get families(): Array<4 | 6> {
    return [...new Set(this.ranges.map((r) => r.cidr.family))];
  }

  /** Number of addresses currently handed out. */
  get size(): number {
    return this.inUse;
  }

  /**
   * Allocates a pair per family, avoiding `excluded` prefixes (strings as in `ip_context.excluded_prefixes`).
   * Throws InvalidArgument for an unparsable excluded prefix and ResourceExhausted when a family has no pair left.
   */
  allocate(excluded: readonly string[] = []): Lease {
    const ex = parseExcluded(excluded);
    const holds: Held[] = [];
    const pairs: AddressPair[] = [];
    try {
      for (const family of this.families) {
        const got = this.pairFrom(family, ex);
        if (!got) {
          const prefixes = this.ranges.filter((r) => r.cidr.family === family).map((r) => formatCidr(r.cidr));
          fail(Code.ResourceExhausted, `ipam: no free IPv${family} address pair left in ${prefixes.join(", ")}`);
        }
        holds.push(got.held);
        pairs.push(hostPair(family, got.dst, got.src));
      }
    } catch (err) {
      for (const h of holds) this.free(h);
      throw err;
    }
    return this.lease(pairs, holds);
  }

  /**
   * Takes back the addresses a connection already carries: for each family of the pool, the first of `srcAddrs`
   * and the first of `dstAddrs` that are host prefixes (/32, /128) inside one of the pool's prefixes, free and not
   * in `excluded` (InvalidArgument for an unparsable one, as `allocate`). This is how an endpoint that restarted,
   * or a new one with the same pool, keeps a healing connection's addresses, as upstream's point2pointipam does.
   * Undefined, with nothing taken, unless every family recovers both sides.
   */
  recover(srcAddrs: readonly string[], dstAddrs: readonly string[], excluded: readonly string[] = []): Lease | undefined {
    const ex = parseExcluded(excluded);
    const holds: Held[] = [];
    const pairs: AddressPair[] = [];
    const take = (addrs: readonly string[], family: 4 | 6): bigint | undefined => {
      for (const a of addrs) {
        const c = parseCidr(a, lenient);
        if (c === undefined || c.family !== family || c.len !== hostLen(family)) continue;
        const range = this.rangeOf(c);
        if (range === undefined || range.used.has(c.base) || ex.some((e) => cidrOverlaps(e, c))) continue;
        this.mark(range, c.base);
        holds.push({ range, values: [c.base] });
        return c.base;
      }
      return undefined;
    };
    for (const family of this.families) {
      const src = take(srcAddrs, family);
      const dst = take(dstAddrs, family);
      if (src === undefined || dst === undefined) {
        for (const h of holds) this.free(h);
        return undefined;
      }
      pairs.push(hostPair(family, dst, src));
    }
    return this.lease(pairs, holds);
  }

  /** Whether `prefix` (an address or prefix as in an IP context) lies inside one of the pool's prefixes. */
  owns(prefix: string): boolean {
    const c = parseCidr(prefix, lenient);
    return c !== undefined && this.rangeOf(c) !== undefined;
  }

  /** Records `pairs` as one lease holding `holds`. */
  private lease(pairs: AddressPair[], holds: Held[]): Lease {
    const lease: Lease = { pairs };
    this.held.set(lease, holds);
    return lease;
  }

  /** Marks `value` of `range` in use (it is free). */
  private mark(range: Range, value: bigint): void {
    range.used.add(value);
    this.inUse++;
    while (range.used.has(range.low)) range.low++;
  }

  private rangeOf(c: Cidr): Range | undefined {
    return this.ranges.find((r) => cidrCovers(r.cidr, c));
  }

  /** Returns a lease's addresses to the pool; releasing twice or a foreign lease does nothing. */
  release(lease: Lease): void {
    const holds = this.held.get(lease);
    if (!holds) return;
    this.held.delete(lease);
    for (const h of holds) this.free(h);
  }

  private free(h: Held): void {
    for (const v of h.values) {
      if (!h.range.used.delete(v)) continue;
      this.inUse--;
      if (v < h.range.low) h.range.low = v;
    }
  }

  private pairFrom(family: 4 | 6, excluded: Cidr[]): { dst: bigint; src: bigint; held: Held } | undefined {
    const ex = excluded
      .filter((c) => c.family === family)
      .map((c) => ({ first: c.base, last: cidrLast(c) }))
      .sort((a, b) => (a.first < b.first ? -1 : a.first > b.first ? 1 : 0));
    for (const range of this.ranges) {
      if (range.cidr.family !== family) continue;
      const dst = firstFree(range, ex, undefined);
      if (dst === undefined) continue;
      const src = firstFree(range, ex, dst);
      if (src === undefined) continue;
      this.mark(range, dst);
      this.mark(range, src);
      return { dst, src, held: { range, values: [dst, src] } };
    }
    return undefined;
  }
}

/** The prefix length of one address of `family`. */
const hostLen = (family: 4 | 6): number => (family === 4 ? 32 : 128);

/** A pair as leases carry it: host prefixes (`addr/32`, `addr/128`). */
function hostPair(family: 4 | 6, dst: bigint, src: bigint): AddressPair {
  const host = hostLen(family);
  return { family, dst: `${formatIp({ family, value: dst })}/${host}`, src: `${formatIp({ family, value: src })}/${host}` };
}

/** `ip_context.excluded_prefixes` parsed; InvalidArgument naming the field for one that is not a prefix. */
function parseExcluded(excluded: readonly string[]): Cidr[] {
  return excluded.map(
    (e) => parseCidr(e, lenient) ?? fail(Code.InvalidArgument, `ipam: invalid prefix "${e}" in ip_context.excluded_prefixes`),
  );
}

/** The lowest address of `range` not in use, not excluded and not `skip`. `ex` is sorted by first address. */
function firstFree(range: Range, ex: Span[], skip: bigint | undefined): bigint | undefined {
  const last = cidrLast(range.cidr);
  let x = range.low;
  let i = 0;
  while (x <= last) {
    while (i < ex.length && (ex[i] as Span).last < x) i++;
    // Excluded prefixes may nest or overlap: jump past every one that covers x.
    let jumped = false;
    for (let j = i; j < ex.length && (ex[j] as Span).first <= x; j++) {
      if ((ex[j] as Span).last >= x) {
        x = (ex[j] as Span).last + 1n;
        jumped = true;
      }
    }
    if (jumped) continue;
    if (range.used.has(x) || x === skip) {
      x++;
      continue;
    }
    return x;
  }
  return undefined;
}

/** Creates a pool from prefixes such as `["169.254.0.0/24", "fd00::/120"]`. */
export function createAddressPool(cidrs: readonly string[]): AddressPool {
  return new AddressPool(cidrs);
}
