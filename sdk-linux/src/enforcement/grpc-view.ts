/**
 * A `ResourceView` over the resource managers' gRPC API (`nsmts.resources.v1`, served by cmd-registry). Reads are
 * the Get/List RPCs; the change feed is four Watch streams (ports, security groups, subnets, route tables) from
 * revision 0: the current objects before SYNCED are skipped (the enforcer reads what it needs), every later
 * change is reported. A stream that ends or fails ends the feed, and the enforcer reopens it and re-renders
 * everything, so no change is lost across a registry restart.
 */
import { PortManager, RouteTableManager, SecurityGroupManager, SubnetManager, WatchEventType } from "@nsm-ts/api/resources";
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

  return {
    getPort: (id, signal) => get(`get port "${id}"`, () => ports.getPort({ id }, co(signal))),
    getSecurityGroup: (id, signal) => get(`get security group "${id}"`, () => groups.getSecurityGroup({ id }, co(signal))),
    getSubnet: (id, signal) => get(`get subnet "${id}"`, () => subnets.getSubnet({ id }, co(signal))),
    getRouteTable: (id, signal) => get(`get route table "${id}"`, () => tables.getRouteTable({ id }, co(signal))),
    async portsInGroup(securityGroupId, signal) {
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
        let synced = 0;
        let markReady: () => void = () => undefined;
        let markFailed: (err: unknown) => void = () => undefined;
        const ready = new Promise<void>((resolve, reject) => {
          markReady = resolve;
          markFailed = reject;
        });
        ready.catch(() => undefined);
        const end = (err: unknown): void => {
          stop.abort();
          markFailed(err);
          q.end(err);
        };
        for (const [kind, open] of streams) {
          void (async () => {
            let isSynced = false;
            for await (const ev of open(both)) {
              if (ev.type === WatchEventType.SYNCED) {
                isSynced = true;
                if (++synced === streams.length) markReady();
              } else if (isSynced && ev.object !== undefined) {
                q.push({ kind, id: ev.object.id });
              }
            }
            end(new StatusError(Code.Unavailable, `enforcement: the ${kind} watch at ${describe} ended`));
          })().catch((err: unknown) => end(both.aborted ? undefined : err));
        }
        return { changes: q, ready };
      }),
  };
}
