/**
 * A `ResourceView` over the resource managers' gRPC API (`nsmts.resources.v1`, served by cmd-registry). Reads are
 * served from a local mirror of the four Watch streams (ports, security groups, subnets, route tables, each from
 * revision 0: every current object, SYNCED, then every change), so re-rendering a thousand connections after a
 * change costs no call; before the streams synced (or after they failed) reads go to the Get/List RPCs. Every
 * change after SYNCED is reported. A stream that ends or fails ends the feed, and the enforcer reopens it and re-renders
 * everything, so no change is lost across a registry restart.
 */
import {
  type Port,
  PortManager,
  type RouteTable,
  RouteTableManager,
  type SecurityGroup,
  SecurityGroupManager,
  type Subnet,
  SubnetManager,
  WatchEventType,
} from "@nsm-ts/api/resources";
import { type CallOptions, type Channel, createClient } from "@nsm-ts/base/grpc";
import { AsyncQueue } from "@nsm-ts/base/queue";
import { Code, isStatusError, StatusError } from "@nsm-ts/base/status";
import type { ResourceChange, ResourceView, WatchedKind } from "./view.js";

/** Options of `createGrpcResourceView`. */
export interface GrpcResourceViewOptions {
  /** Replaces the Watch RPCs as the change feed (tests). */
  readonly watch?: ResourceView["watch"];
  /** How errors name the manager (e.g. `NSM_RESOURCES_URL=…`); default the channel's URL. */
  readonly describe?: string;
  /** Deadline of each call; default 5 000 ms. */
  readonly callTimeoutMs?: number;
}

/** Creates the view. */
export function createGrpcResourceView(channel: Channel, opts: GrpcResourceViewOptions = {}): ResourceView {
  const ports = createClient(PortManager, channel);
  const groups = createClient(SecurityGroupManager, channel);
  const subnets = createClient(SubnetManager, channel);
  const tables = createClient(RouteTableManager, channel);
  const describe = opts.describe ?? channel.url;
  const co = (signal: AbortSignal): CallOptions => ({ signal, timeoutMs: opts.callTimeoutMs ?? 5_000 });

  async function get<T>(what: string, f: () => Promise<T>): Promise<T | undefined> {
    try {
      return await f();
    } catch (err) {
      if (isStatusError(err, Code.NotFound)) return undefined;
      if (isStatusError(err)) throw new StatusError(err.code, `enforcement: ${what} at ${describe}: ${err.message}`, { cause: err });
      throw err;
    }
  }

  /** What the synced watch holds: every port, group, subnet and route table, and the ports of each group. */
  interface Mirror {
    readonly port: Map<string, Port>;
    readonly securitygroup: Map<string, SecurityGroup>;
    readonly subnet: Map<string, Subnet>;
    readonly routetable: Map<string, RouteTable>;
    readonly members: Map<string, Set<string>>;
  }
  let mirror: Mirror | undefined;

  /** Applies one event to the mirror; for a port returns the groups it was in before and is in after. */
  function put(m: Mirror, kind: WatchedKind, obj: { id: string }, deleted: boolean): string[] | undefined {
    let touched: string[] | undefined;
    if (kind === "port") {
      const before = m.port.get(obj.id)?.securityGroupIds ?? [];
      for (const g of before) m.members.get(g)?.delete(obj.id);
      const after = deleted ? [] : (obj as Port).securityGroupIds;
      for (const g of after) {
        const set = m.members.get(g) ?? new Set<string>();
        m.members.set(g, set);
        set.add(obj.id);
      }
      touched = [...new Set([...before, ...after])];
    }
    const map = m[kind] as Map<string, unknown>;
    if (deleted) map.delete(obj.id);
    else map.set(obj.id, obj);
    return touched;
  }

  return {
    // While a watch is synced, reads come from its mirror (no call per record); otherwise from the Get/List RPCs.
    getPort: async (id, signal) => (mirror ? mirror.port.get(id) : get(`get port "${id}"`, () => ports.getPort({ id }, co(signal)))),
    getSecurityGroup: async (id, signal) =>
      mirror ? mirror.securitygroup.get(id) : get(`get security group "${id}"`, () => groups.getSecurityGroup({ id }, co(signal))),
    getSubnet: async (id, signal) =>
      mirror ? mirror.subnet.get(id) : get(`get subnet "${id}"`, () => subnets.getSubnet({ id }, co(signal))),
    getRouteTable: async (id, signal) =>
      mirror ? mirror.routetable.get(id) : get(`get route table "${id}"`, () => tables.getRouteTable({ id }, co(signal))),
    async portsInGroup(securityGroupId, signal) {
      if (mirror) {
        const m = mirror;
        return [...(m.members.get(securityGroupId) ?? [])].map((id) => m.port.get(id)).filter((p): p is Port => p !== undefined);
      }
      // ListPorts has no security-group filter: read every page and keep the members.
      const out = [];
      let pageToken = "";
      do {
        const page = await get("list ports", () => ports.listPorts({ pageSize: 1000, pageToken }, co(signal)));
        if (page === undefined) break;
        out.push(...page.items.filter((p) => p.securityGroupIds.includes(securityGroupId)));
        pageToken = page.nextPageToken;
      } while (pageToken !== "");
      return out;
    },
    watch:
      opts.watch ??
      ((signal) => {
        type Ev = { type: WatchEventType; object?: { id: string } | undefined };
        const streams: Array<[WatchedKind, (s: AbortSignal) => AsyncIterable<Ev>]> = [
          ["port", (s) => ports.watchPorts({}, { signal: s })],
          ["securitygroup", (s) => groups.watchSecurityGroups({}, { signal: s })],
          ["subnet", (s) => subnets.watchSubnets({}, { signal: s })],
          ["routetable", (s) => tables.watchRouteTables({}, { signal: s })],
        ];
        const stop = new AbortController();
        const both = AbortSignal.any([signal, stop.signal]);
        // Unbounded on purpose: the enforcer reads promptly, and a full buffer would stall the streams.
        const q = new AsyncQueue<ResourceChange>({ capacity: Number.MAX_SAFE_INTEGER, onReturn: () => stop.abort() });
        const next: Mirror = { port: new Map(), securitygroup: new Map(), subnet: new Map(), routetable: new Map(), members: new Map() };
        let synced = 0;
        let markReady: () => void = () => undefined;
        let markFailed: (err: unknown) => void = () => undefined;
        const ready = new Promise<void>((resolve, reject) => {
          markReady = resolve;
          markFailed = reject;
        });
        ready.catch(() => undefined);
        const end = (err: unknown): void => {
          if (mirror === next) mirror = undefined; // stale from now on: read through the RPCs until a new watch syncs
          stop.abort();
          markFailed(err);
          q.end(err);
        };
        for (const [kind, open] of streams) {
          void (async () => {
            for await (const ev of open(both)) {
              if (ev.type === WatchEventType.SYNCED) {
                if (++synced === streams.length) {
                  mirror = next;
                  markReady();
                }
              } else if (ev.object !== undefined) {
                // The mirror changes before the enforcer hears of it, so its re-render reads the new state.
                const touched = put(next, kind, ev.object, ev.type === WatchEventType.DELETE);
                const id = ev.object.id;
                if (synced === streams.length) q.push(touched === undefined ? { kind, id } : { kind, id, groups: touched });
              }
            }
            end(new StatusError(Code.Unavailable, `enforcement: the ${kind} watch at ${describe} ended`));
          })().catch((err: unknown) => end(both.aborted ? undefined : err));
        }
        return { changes: q, ready };
      }),
  };
}
