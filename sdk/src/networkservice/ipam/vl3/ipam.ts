/**
 * The address book of one vL3 endpoint: the prefix it holds (from the prefix server), its own address in it
 * (the prefix's first address, as upstream) and the host addresses handed to its clients. `reset` swaps the
 * prefix (a new one after a prefix-server restart) and bumps `generation`, which tells the vL3 elements that
 * addresses from the old prefix are stale; subscribers hear of every reset.
 */
import { type Cidr, cidrContains, cidrLast, cidrOf, formatCidr, formatIp, ipBits, parseCidr, parseIp } from "@nsm-ts/base/netaddr";
import { Code, fail } from "@nsm-ts/base/status";

const lenient = { bare: true, zone: true } as const;

/** The vL3 IPAM of one endpoint (see the header comment). */
export class Vl3Ipam {
  private cidr: Cidr | undefined;
  private used = new Set<bigint>();
  private excluded: Cidr[] = [];
  private low = 0n;
  private gen = 0;
  private readonly subscribers = new Set<() => void>();

  /** `prefix`: start with this prefix at once (tests, a static configuration); default none until `reset`. */
  constructor(prefix?: string, excludePrefixes: readonly string[] = []) {
    if (prefix !== undefined) this.reset(prefix, excludePrefixes);
  }

  /** True once a prefix is set. */
  get initialized(): boolean {
    return this.cidr !== undefined;
  }

  /** Bumped by every `reset`: a lease taken in an older generation is stale. */
  get generation(): number {
    return this.gen;
  }

  /** The prefix, e.g. "169.254.1.0/24"; FailedPrecondition before the first `reset`. */
  get prefix(): string {
    return formatCidr(this.current());
  }

  /** The address family of the prefix. */
  get family(): 4 | 6 {
    return this.current().family;
  }

  /** The endpoint's own address as a host prefix ("169.254.1.0/32"). */
  get selfAddress(): string {
    const c = this.current();
    return `${formatIp({ family: c.family, value: c.base })}/${ipBits(c.family)}`;
  }

  /** The endpoint's own address without length ("169.254.1.0"), the next hop of routes into this endpoint. */
  get selfIp(): string {
    const c = this.current();
    return formatIp({ family: c.family, value: c.base });
  }

  /** Addresses handed out (the endpoint's own not counted). */
  get size(): number {
    return this.used.size;
  }

  /**
   * Takes `prefix` (and drops every address handed out from the previous one): the endpoint's own address and
   * `excludePrefixes` are never handed out. InvalidArgument naming the prefix when it is not a CIDR.
   */
  reset(prefix: string, excludePrefixes: readonly string[] = []): void {
    const c = parseCidr(prefix) ?? fail(Code.InvalidArgument, `vl3: prefix "${prefix}" is not a CIDR`);
    if (c.size < 2n) fail(Code.InvalidArgument, `vl3: prefix ${formatCidr(c)} has no room for clients`);
    this.cidr = c;
    this.excluded = excludePrefixes.flatMap((p) => parseCidr(p, lenient) ?? []).filter((e) => e.family === c.family);
    this.used = new Set();
    this.low = c.base + 1n;
    this.gen++;
    for (const fn of [...this.subscribers]) fn();
  }

  /** Calls `fn` after every `reset`; returns the unsubscribe function. */
  subscribe(fn: () => void): () => void {
    this.subscribers.add(fn);
    return () => this.subscribers.delete(fn);
  }

  /** True when `addr` ("a.b.c.d" or "a.b.c.d/32") lies in the current prefix. */
  contains(addr: string): boolean {
    const ip = parseIp(addr.split("/")[0] ?? "", { zone: true });
    return this.cidr !== undefined && ip !== undefined && ip.family === this.cidr.family && cidrContains(this.cidr, ip);
  }

  /** True when `prefix` lies in the current prefix or overlaps it. */
  overlaps(prefix: string): boolean {
    const c = parseCidr(prefix, lenient);
    if (c === undefined || this.cidr === undefined || c.family !== this.cidr.family) return false;
    return c.base <= cidrLast(this.cidr) && this.cidr.base <= cidrLast(c);
  }

  /** The lowest free host address as "a.b.c.d/32"; ResourceExhausted naming the prefix when none is left. */
  allocate(): string {
    const c = this.current();
    const last = cidrLast(c);
    let x = this.low;
    while (x <= last && (this.used.has(x) || this.isExcluded(x))) x++;
    if (x > last) fail(Code.ResourceExhausted, `vl3: no free address left in the endpoint's prefix ${formatCidr(c)}`);
    this.used.add(x);
    this.low = x + 1n;
    return `${formatIp({ family: c.family, value: x })}/${ipBits(c.family)}`;
  }

  /** Takes exactly `addr` when it is in the prefix, free and not excluded (a client keeping its address); else false. */
  take(addr: string): boolean {
    const c = this.cidr;
    const ip = parseIp(addr.split("/")[0] ?? "", { zone: true });
    if (c === undefined || ip === undefined || ip.family !== c.family || !cidrContains(c, ip)) return false;
    if (ip.value === c.base || this.used.has(ip.value) || this.isExcluded(ip.value)) return false;
    this.used.add(ip.value);
    return true;
  }

  /** Returns `addr` to the pool when it was handed out from the current prefix; anything else is ignored. */
  free(addr: string): void {
    const ip = parseIp(addr.split("/")[0] ?? "", { zone: true });
    if (ip === undefined || !this.used.delete(ip.value)) return;
    if (ip.value < this.low) this.low = ip.value;
  }

  /** The vL3 range derived as upstream does when none is configured: the prefix widened to /16 (IPv4) or /64 (IPv6). */
  defaultGlobalPrefix(): string {
    const c = this.current();
    const len = c.family === 4 ? 16 : 64;
    return formatCidr(cidrOf({ family: c.family, value: c.base }, Math.min(len, c.len)));
  }

  private isExcluded(v: bigint): boolean {
    return this.excluded.some((e) => v >= e.base && v <= cidrLast(e));
  }

  private current(): Cidr {
    return this.cidr ?? fail(Code.FailedPrecondition, "vl3: the endpoint has no prefix yet");
  }
}

/** Creates a vL3 IPAM, optionally with its first prefix. */
export function createVl3Ipam(prefix?: string, excludePrefixes: readonly string[] = []): Vl3Ipam {
  return new Vl3Ipam(prefix, excludePrefixes);
}
