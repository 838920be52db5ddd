/**
 * A `ResourceView` over the resource managers' gRPC API (`nsmts.resources.v1`, served by cmd-registry). Reads are
 * the Get/List RPCs; the change feed is handed in (`watch`), because it is the one part that depends on how the
 * managers publish changes.
 */
import { PortManager, RouteTableManager, SecurityGroupManager, SubnetManager } from "@nsm-ts/api/resources";
import { type CallOptions, type Channel, createClient } from "@nsm-ts/base/grpc";
import { Code, isStatusError, StatusError } from "@nsm-ts/base/status";
import type { ResourceView } from "./view.js";

/** Options of `createGrpcResourceView`. */
export interface GrpcResourceViewOptions {
  /** The change feed of the managers. */
  readonly watch: ResourceView["watch"];
  /** How errors name the manager (e.g. `NSM_RESOURCES_URL=…`); default the channel's URL. */
  readonly describe?: string;
  /** Deadline of each call; default 5 000 ms. */
  readonly callTimeoutMs?: number;
}

/** Creates the view. */
export function createGrpcResourceView(channel: Channel, opts: GrpcResourceViewOptions): ResourceView {
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
    watch: opts.watch,
  };
}
