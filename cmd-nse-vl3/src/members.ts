/** The default member listener of cmd-nse-vl3: one log line per join, refresh and leave. */
import type { Logger } from "@nsm-ts/base/log";
import type { ipam } from "@nsm-ts/sdk/networkservice";

/** Logs members (the DNS server of member names replaces it through `RunOptions.members`). */
export function memberLog(log: Logger): ipam.vl3.Vl3MemberListener {
  return {
    join: (m) => log.info({ connId: m.connId, member: m.name, addresses: m.addresses, peer: m.peer }, "vL3 member joined"),
    leave: (m) => log.info({ connId: m.connId, member: m.name, addresses: m.addresses, peer: m.peer }, "vL3 member left"),
  };
}
