/**
 * resourceipam: like point2pointipam, but the addresses come from a subnet of the resource manager
 * (`nsmts.resources.v1`): each connection gets a Port owned by its connection id with two fixed IPs from the
 * subnet — the first is the endpoint side (`dst`), the second the client side (`src`), as /32 or /128 — and
 * the same routes as point2pointipam. Because the port lives in the manager, not in this process, an endpoint
 * that restarts finds the port by owner and hands the connection the same pair instead of a conflicting one,
 * and every connection's addresses are visible as ports. The port is deleted on Close and when the first
 * Request that created it fails.
 *
 * Writes: `context.ip_context.{src,dst}_ip_addrs`, `src_routes` (route to dst), `dst_routes` (route to src);
 * `context.extra_context["nsmts.resources/port"]` (the port id, so a kernel forwarder can enforce the port's
 * security groups and its subnet's route table on the connection); server metadata (the port). Place after `metadata` (and after `excludedprefixes`). A pair overlapping the
 * request's `ip_context.excluded_prefixes` is not handed out: when the exclusions touch the subnet, the element
 * lists the subnet's taken addresses and asks for two specific free ones outside them; a held pair that has
 * become excluded is replaced on refresh.
 */
import { create } from "@bufbuild/protobuf";
import {
  type Connection,
  type ConnectionContext,
  ConnectionContextSchema,
  type IPContext,
  IPContextSchema,
  RouteSchema,
} from "@nsm-ts/api/networkservice";
import { IpAddressManager, type Port, PortManager, type Subnet, SubnetManager } from "@nsm-ts/api/resources";
import type { CallContext } from "@nsm-ts/base/context";
import { MetaKey } from "@nsm-ts/base/context";
import { type CallOptions, type Channel, createClient } from "@nsm-ts/base/grpc";
import { type Cidr, cidrLast, cidrOverlaps, formatIp, parseCidr, parseIp } from "@nsm-ts/base/netaddr";
import { Code, fail, isStatusError, StatusError } from "@nsm-ts/base/status";
import { connectionOf } from "../../core/chain.js";
import type { NetworkServiceElement } from "../../core/types.js";

/** Key in `connection.context.extra_context` naming the connection's port in the resource manager. */
export const PORT_CONTEXT_KEY = "nsmts.resources/port";

/** Options of `newServer`. */
export interface ResourceIpamOptions {
  /** Channel to the resource manager (cmd-registry serves it). */
  channel: Channel;
  /** Id of the subnet to allocate from. */
  subnetId: string;
  /**
   * How errors name the manager, so an operator knows which setting to fix (cmd-endpoint passes
   * `NSM_IPAM_URL=<url>`); default the channel's URL.
   */
  describe?: string;
  /** Prefix of the port id; the id is this plus the connection id, so two racing creates cannot both succeed. */
  portIdPrefix?: string;
  /** Deadline of each call to the manager when the request has none shorter; default 10 s. */
  callTimeoutMs?: number;
  /**
   * Security groups of the ports created (a list, or chosen per connection, e.g. from its labels); default none.
   * A kernel forwarder with an enforcer applies them to the client's interface.
   */
  securityGroups?: readonly string[] | ((conn: Connection) => readonly string[]);
}

/** The pair a connection holds, as written into its IP context. */
interface Held {
  readonly portId: string;
  readonly dst: string;
  readonly src: string;
}

function hostPrefix(address: string): string {
  return address.includes("/") ? address : `${address}/${address.includes(":") ? 128 : 32}`;
}

function addUnique(list: string[], v: string): void {
  if (!list.includes(v)) list.push(v);
}

function addRoute(routes: IPContext["srcRoutes"], prefix: string): void {
  if (!routes.some((r) => r.prefix === prefix)) routes.push(create(RouteSchema, { prefix }));
}

function apply(cc: ConnectionContext, ip: IPContext, h: Held): void {
  cc.extraContext[PORT_CONTEXT_KEY] = h.portId;
  addUnique(ip.srcIpAddrs, h.src);
  addUnique(ip.dstIpAddrs, h.dst);
  addRoute(ip.srcRoutes, h.dst);
  addRoute(ip.dstRoutes, h.src);
}

function remove(cc: ConnectionContext, ip: IPContext, h: Held): void {
  if (cc.extraContext[PORT_CONTEXT_KEY] === h.portId) delete cc.extraContext[PORT_CONTEXT_KEY];
  ip.srcIpAddrs = ip.srcIpAddrs.filter((a) => a !== h.src);
  ip.dstIpAddrs = ip.dstIpAddrs.filter((a) => a !== h.dst);
  ip.srcRoutes = ip.srcRoutes.filter((r) => r.prefix !== h.dst);
  ip.dstRoutes = ip.dstRoutes.filter((r) => r.prefix !== h.src);
}

/** How prefixes and addresses are read here: a bare address is a host prefix (/32, /128), an IPv6 zone is dropped. */
const lenient = { bare: true, zone: true } as const;

/** A prefix or address that came from the resource manager: a malformed one is the manager's fault, hence Internal. */
function fromManager<T>(parsed: T | undefined, text: string): T {
  return parsed ?? fail(Code.Internal, `resourceipam: "${text}" from the resource manager is not an IP address or prefix`);
}

function parseExcluded(excluded: readonly string[]): Cidr[] {
  return excluded.map(
    (e) => parseCidr(e, lenient) ?? fail(Code.InvalidArgument, `resourceipam: invalid prefix "${e}" in ip_context.excluded_prefixes`),
  );
}

function isExcluded(h: Held, ex: readonly Cidr[]): boolean {
  const dst = fromManager(parseCidr(h.dst, lenient), h.dst);
  const src = fromManager(parseCidr(h.src, lenient), h.src);
  return ex.some((e) => cidrOverlaps(e, dst) || cidrOverlaps(e, src));
}

/**
 * The two lowest addresses of the subnet's pools that are neither taken, reserved (network, IPv4 broadcast,
 * gateway) nor inside `ex`; undefined when there are not two.
 */
function freePair(s: Subnet, taken: ReadonlySet<bigint>, ex: readonly Cidr[]): [string, string] | undefined {
  const cidr = fromManager(parseCidr(s.cidr, lenient), s.cidr);
  const width = cidr.family === 4 ? 32 : 128;
  const reserved = new Set<bigint>();
  if (cidr.len < width - 1) {
    reserved.add(cidr.base);
    if (cidr.family === 4) reserved.add(cidrLast(cidr));
  }
  const address = (text: string): bigint => fromManager(parseIp(text, lenient), text).value;
  if (s.gatewayIp !== "") reserved.add(address(s.gatewayIp));
  const ranges =
    s.allocationPools.length > 0
      ? s.allocationPools.map((p) => ({ first: address(p.start), last: address(p.end) }))
      : [{ first: cidr.base, last: cidrLast(cidr) }];
  const sorted = ex
    .filter((e) => e.family === cidr.family)
    .map((e) => ({ first: e.base, last: cidrLast(e) }))
    .sort((a, b) => (a.first < b.first ? -1 : a.first > b.first ? 1 : 0));
  const got: bigint[] = [];
  for (const r of ranges) {
    let x = r.first;
    while (x <= r.last && got.length < 2) {
      // Excluded prefixes may nest or overlap: jump past every one that covers x.
      const cover = sorted.filter((e) => e.first <= x && x <= e.last);
      if (cover.length > 0) {
        // biome-ignore lint/complexity/useMathMinMax: bigints, which Math.max/min do not take.
        x = cover.reduce((m, e) => (e.last > m ? e.last : m), x) + 1n;
        continue;
      }
      if (!taken.has(x) && !reserved.has(x)) got.push(x);
      x++;
    }
  }
  const [dst, src] = got;
  return dst === undefined || src === undefined
    ? undefined
    : [formatIp({ family: cidr.family, value: dst }), formatIp({ family: cidr.family, value: src })];
}

/** Creates the resource-manager IPAM server element. */
export function newServer(opts: ResourceIpamOptions): NetworkServiceElement {
  const ports = createClient(PortManager, opts.channel);
  const subnets = createClient(SubnetManager, opts.channel);
  const ips = createClient(IpAddressManager, opts.channel);
  const describe = opts.describe ?? opts.channel.url;
  const prefix = opts.portIdPrefix ?? "nsm-conn-";
  const timeoutMs = opts.callTimeoutMs ?? 10_000;
  const heldKey = new MetaKey<Held>("resourceipam.port");
  let subnet: Subnet | undefined;

  const callOpts = (ctx: CallContext): CallOptions => ({
    signal: ctx.signal,
    timeoutMs,
    ...(ctx.deadline === undefined ? {} : { deadline: ctx.deadline }),
  });

  /** Runs one call to the manager, turning "cannot reach it" into an Unavailable that names where it was looked for. */
  async function call<T>(what: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      if (isStatusError(err) && (err.code === Code.Unavailable || err.code === Code.DeadlineExceeded)) {
        fail(Code.Unavailable, `resourceipam: the resource manager at ${describe} cannot be reached (${what}): ${err.message}`, err);
      }
      if (isStatusError(err)) throw new StatusError(err.code, `resourceipam: ${what} at ${describe}: ${err.message}`, { cause: err });
      throw err;
    }
  }

  async function theSubnet(ctx: CallContext): Promise<Subnet> {
    subnet ??= await call(`get subnet "${opts.subnetId}"`, () => subnets.getSubnet({ id: opts.subnetId }, callOpts(ctx)));
    return subnet;
  }

  function heldOf(p: Port): Held {
    const [dst, src] = p.fixedIps.filter((f) => f.subnetId === opts.subnetId);
    if (dst === undefined || src === undefined) {
      fail(
        Code.Internal,
        `resourceipam: port "${p.id}" of connection "${p.owner}" has fewer than two addresses in subnet "${opts.subnetId}"`,
      );
    }
    return { portId: p.id, dst: hostPrefix(dst.ipAddress), src: hostPrefix(src.ipAddress) };
  }

  /** The port this connection already holds in the manager (from before a restart), if any. */
  async function findPort(ctx: CallContext, connId: string): Promise<Port | undefined> {
    const list = await call(`list ports of connection "${connId}"`, () =>
      ports.listPorts({ owner: connId, subnetId: opts.subnetId, pageSize: 10 }, callOpts(ctx)),
    );
    return list.items[0];
  }

  /** Every address of the subnet someone holds, read page by page. */
  async function takenAddresses(ctx: CallContext, s: Subnet): Promise<Set<bigint>> {
    const taken = new Set<bigint>();
    let pageToken = "";
    do {
      const page = await call(`list addresses of subnet "${s.id}"`, () =>
        ips.listIpAddresses({ subnetId: s.id, pageSize: 1000, pageToken }, callOpts(ctx)),
      );
      for (const a of page.items) taken.add(fromManager(parseIp(a.address, lenient), a.address).value);
      pageToken = page.nextPageToken;
    } while (pageToken !== "");
    return taken;
  }

  async function createPort(ctx: CallContext, conn: Connection, ex: readonly Cidr[]): Promise<Port> {
    const connId = conn.id;
    const sg = opts.securityGroups;
    const securityGroupIds = [...(typeof sg === "function" ? sg(conn) : (sg ?? []))];
    const s = await theSubnet(ctx);
    const relevant = ex.filter((e) => cidrOverlaps(e, fromManager(parseCidr(s.cidr, lenient), s.cidr)));
    // Specific addresses lose a race against another allocator now and then: a few attempts, each re-reading.
    for (let attempt = 0; ; attempt++) {
      let fixedIps: Array<{ subnetId: string; ipAddress?: string }> = [{ subnetId: s.id }, { subnetId: s.id }];
      if (relevant.length > 0) {
        const pair = freePair(s, await takenAddresses(ctx, s), relevant);
        if (pair === undefined) {
          fail(
            Code.ResourceExhausted,
            `resourceipam: subnet "${s.id}" (${s.cidr}) at ${describe} has no free address pair outside the excluded prefixes`,
          );
        }
        fixedIps = pair.map((ipAddress) => ({ subnetId: s.id, ipAddress }));
      }
      try {
        return await call(`create port for connection "${connId}" in subnet "${s.id}"`, () =>
          ports.createPort({ id: prefix + connId, networkId: s.networkId, owner: connId, fixedIps, securityGroupIds }, callOpts(ctx)),
        );
      } catch (err) {
        if (!isStatusError(err, Code.AlreadyExists)) throw err;
        // A concurrent request for the same connection won the create; its port is ours too.
        const p = await findPort(ctx, connId);
        if (p !== undefined) return p;
        if (relevant.length === 0 || attempt >= 3) throw err;
      }
    }
  }

  async function deletePort(ctx: CallContext, portId: string): Promise<void> {
    try {
      await call(`delete port "${portId}"`, () => ports.deletePort({ id: portId }, callOpts(ctx)));
    } catch (err) {
      if (!isStatusError(err, Code.NotFound)) throw err;
    }
  }

  return {
    name: "resourceipam",
    async request(ctx, req, next) {
      const conn = connectionOf(req);
      conn.context ??= create(ConnectionContextSchema);
      conn.context.ipContext ??= create(IPContextSchema);
      const ip = conn.context.ipContext;
      const md = ctx.metadata.server;

      const ex = parseExcluded(ip.excludedPrefixes);

      let held = md.get(heldKey);
      if (held !== undefined && isExcluded(held, ex)) {
        ctx.log.info({ connId: conn.id, port: held.portId }, "resourceipam: addresses now excluded, allocating new ones");
        remove(conn.context, ip, held);
        md.delete(heldKey);
        await deletePort(ctx, held.portId);
        held = undefined;
      }
      let created = false;
      if (held === undefined) {
        let port = await findPort(ctx, conn.id);
        if (port !== undefined) {
          const found = heldOf(port);
          if (isExcluded(found, ex)) {
            ctx.log.info(
              { connId: conn.id, port: port.id },
              "resourceipam: the connection's port has excluded addresses, allocating new ones",
            );
            remove(conn.context, ip, found);
            await deletePort(ctx, port.id);
            port = undefined;
          } else {
            ctx.log.info({ connId: conn.id, port: port.id }, "resourceipam: reusing the connection's port from the resource manager");
          }
        }
        if (port === undefined) {
          port = await createPort(ctx, conn, ex);
          created = true;
        }
        try {
          held = heldOf(port);
        } catch (err) {
          if (created) await deletePort(ctx, port.id).catch(() => undefined);
          throw err;
        }
        md.set(heldKey, held);
      }
      apply(conn.context, ip, held);
      try {
        return await next.request(ctx, req);
      } catch (err) {
        if (created) {
          md.delete(heldKey);
          remove(conn.context, ip, held);
          await deletePort(ctx, held.portId).catch((e: unknown) =>
            ctx.log.warn({ err: e, connId: conn.id, port: held?.portId }, "resourceipam: could not delete the port of a failed request"),
          );
        }
        throw err;
      }
    },
    async close(ctx, conn, next) {
      try {
        await next.close(ctx, conn);
      } finally {
        const held = ctx.metadata.server.delete(heldKey);
        // After a restart this process has no metadata for the connection; its port is found by owner.
        const portId = held?.portId ?? (await findPort(ctx, conn.id).catch(() => undefined))?.id;
        if (portId !== undefined) {
          await deletePort(ctx, portId).catch((e: unknown) =>
            ctx.log.warn({ err: e, connId: conn.id, port: portId }, "resourceipam: could not delete the port of a closed connection"),
          );
        }
      }
    },
  };
}
