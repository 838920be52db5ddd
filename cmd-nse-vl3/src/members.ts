/** The default member listener of cmd-nse-vl3 (one log line per join, refresh and leave) and the peers we dial as members. */
import type { Connection } from "@nsm-ts/api/networkservice";
import type { Logger } from "@nsm-ts/base/log";
import type { ipam } from "@nsm-ts/sdk/networkservice";

/** Logs members (the DNS server of member names replaces it through `RunOptions.members`). */
export function memberLog(log: Logger): ipam.vl3.Vl3MemberListener {
  return {
    join: (m) => log.info({ connId: m.connId, member: m.name, addresses: m.addresses, peer: m.peer }, "vL3 member joined"),
    leave: (m) => log.info({ connId: m.connId, member: m.name, addresses: m.addresses, peer: m.peer }, "vL3 member left"),
  };
}

/**
 * Reports the peer endpoints this endpoint connects to (`conn`) and disconnects from (`undefined`) to `members`,
 * as members with `peer: true` and the peer's own address.
 */
export function peerMembers(members: ipam.vl3.Vl3MemberListener, log: Logger): (name: string, conn: Connection | undefined) => void {
  const known = new Map<string, ipam.vl3.Vl3Member>();
  const report = async (name: string, conn: Connection | undefined): Promise<void> => {
    try {
      if (conn === undefined) {
        const m = known.get(name);
        known.delete(name);
        if (m !== undefined) await members.leave(m);
        return;
      }
      const m: ipam.vl3.Vl3Member = {
        connId: conn.id,
        name,
        networkService: conn.networkService,
        labels: { ...conn.labels },
        // The peer's own address: the far side of our connection.
        addresses: (conn.context?.ipContext?.dstIpAddrs ?? []).map((a) => a.split("/")[0] ?? a),
        peer: true,
      };
      known.set(name, m);
      await members.join(m);
    } catch (err) {
      log.warn({ err, peer: name }, "the member listener failed on a peer");
    }
  };
  return (name, conn) => void report(name, conn);
}
