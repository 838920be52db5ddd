/**
 * The members of a vL3 endpoint, for whatever names them (a DNS server for `<client name>.<service>.`): after
 * each successful Request it reports the member (upsert: a refresh may bring a new address after a prefix reset)
 * and after Close that it left. Peer vL3 endpoints are reported with `peer: true`.
 *
 * Reads: the returned connection (path, labels, `src_ip_addrs`), the vl3 lease. Server metadata: the member.
 * Placement: after `vl3.newServer` in the endpoint's `additional`.
 */
import type { Connection } from "@nsm-ts/api/networkservice";
import { MetaKey } from "@nsm-ts/base/context";
import type { NetworkServiceElement } from "../../core/types.js";
import { leaseKey } from "./server.js";

/** One member of the vL3 network as this endpoint sees it. */
export interface Vl3Member {
  /** The connection id at this endpoint. */
  readonly connId: string;
  /** The client's name: the first path segment's name (cmd-nsc's NSM_NAME, a pod name). */
  readonly name: string;
  readonly networkService: string;
  /** The connection's labels (clientinfo adds `podName`, `nodeName`, `clusterName`). */
  readonly labels: Readonly<Record<string, string>>;
  /** The member's addresses, without length (the vL3 address handed out, or a peer's own address). */
  readonly addresses: readonly string[];
  /** True for a peer vL3 endpoint (it brought its own address). */
  readonly peer: boolean;
}

/** What `newMemberServer` reports to. Errors are logged, never fail the connection. */
export interface Vl3MemberListener {
  /** A member joined or was refreshed (possibly with new addresses). */
  join(member: Vl3Member): void | Promise<void>;
  /** A member left (Close, timeout, heal giving up). */
  leave(member: Vl3Member): void | Promise<void>;
}

const memberKey = new MetaKey<Vl3Member>("vl3.member");

function memberOf(conn: Connection, peer: boolean): Vl3Member {
  return {
    connId: conn.id,
    name: conn.path?.pathSegments[0]?.name ?? "",
    networkService: conn.networkService,
    labels: { ...conn.labels },
    addresses: (conn.context?.ipContext?.srcIpAddrs ?? []).map((a) => a.split("/")[0] ?? a),
    peer,
  };
}

/** Creates the element reporting members to `listener`. */
export function newMemberServer(listener: Vl3MemberListener): NetworkServiceElement {
  return {
    name: "vl3-members",
    async request(ctx, req, next) {
      const conn = await next.request(ctx, req);
      const m = memberOf(conn, ctx.metadata.server.get(leaseKey)?.addr === undefined);
      ctx.metadata.server.set(memberKey, m);
      try {
        await listener.join(m);
      } catch (err) {
        ctx.log.warn({ connId: conn.id, err, member: m.name }, "vl3-members: the member listener failed on join");
      }
      return conn;
    },
    async close(ctx, conn, next) {
      try {
        await next.close(ctx, conn);
      } finally {
        const m = ctx.metadata.server.delete(memberKey);
        if (m !== undefined) {
          try {
            await listener.leave(m);
          } catch (err) {
            ctx.log.warn({ connId: conn.id, err, member: m.name }, "vl3-members: the member listener failed on leave");
          }
        }
      }
    },
  };
}
