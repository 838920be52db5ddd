/**
 * The member-name server of cmd-nse-vl3 (NSM_DNS_ENABLED): each client's names (NSM_DNS_TEMPLATES) bound to its
 * vL3 address, answered on the endpoint's own vL3 address (NSM_DNS_PORT); a name it does not hold is asked of the
 * peer vL3 endpoints (their own addresses, one hop), so a member on one node resolves a member on another.
 * Clients are given the server with their service as search domain. The address must be local in our netns: when
 * it is not yet (no client link carries it), it goes on loopback as a /32 (/128) and comes off at close. A new
 * prefix (the prefix server lost ours) moves the server to the new own address.
 */
import { isIP } from "node:net";
import type { Logger } from "@nsm-ts/base/log";
import {
  createMemberDnsServer,
  formatServerAddress,
  type MemberDnsServer,
  type MemberDnsServerOptions,
  MemoryRecords,
} from "@nsm-ts/sdk/dns";
import { dnscontext, type ipam, type NetworkServiceElement } from "@nsm-ts/sdk/networkservice";
import { runCommand } from "@nsm-ts/sdk-linux";
import { memberLog } from "./members.js";

/** What `run` needs of the member-name server. */
export interface MemberDns {
  /** The member listener (`RunOptions.members`). */
  readonly members: ipam.vl3.Vl3MemberListener;
  /** The endpoint element giving clients the server while it listens (`RunOptions.additional`). */
  elements(vl3: { ipam: ipam.vl3.Vl3Ipam; networkService: string }): NetworkServiceElement[];
  /** Listens on the own address of `v` (once its prefix is known) and follows prefix resets. */
  start(v: ipam.vl3.Vl3Ipam): Promise<void>;
  /** Resolves when the server has followed the last prefix reset (moved, or given up with a warning). */
  settled(): Promise<void>;
  /** Stops serving and takes our loopback address off. */
  close(): Promise<void>;
}

/** Options of `createMemberDns`. */
export interface MemberDnsOptions {
  nameTemplates: readonly string[];
  port: number;
  log: Logger;
  registry?: MemberDnsServerOptions["registry"];
}

/** Creates the member-name server of the endpoint (not listening until `start`). */
export function createMemberDns(opts: MemberDnsOptions): MemberDns {
  const { log, port } = opts;
  const records = new MemoryRecords();
  const names = dnscontext.vl3dns.newMemberNames(records, { nameTemplates: opts.nameTemplates, dnsPort: port });
  const logged = memberLog(log);
  let server: MemberDnsServer | undefined;
  let serving: string | undefined; // the ip the server listens on
  let onLoopback: string | undefined; // the address we put on lo
  let unsubscribe: (() => void) | undefined;
  let moving = Promise.resolve();

  const loopback = async (op: "add" | "del", ip: string): Promise<boolean> => {
    const r = await runCommand(["ip", "addr", op, `${ip}/${isIP(ip) === 6 ? 128 : 32}`, "dev", "lo"]);
    if (r.code !== 0)
      log.warn({ address: ip, stderr: r.stderr.trim() }, `dns: cannot ${op === "add" ? "add" : "remove"} the address on loopback`);
    return r.code === 0;
  };
  const stop = async (): Promise<void> => {
    const s = server;
    server = undefined;
    serving = undefined;
    await s?.close();
    if (onLoopback !== undefined) {
      const ip = onLoopback;
      onLoopback = undefined;
      await loopback("del", ip);
    }
  };
  const listen = async (ip: string): Promise<void> => {
    const at = formatServerAddress({ host: ip, port });
    const attempt = async (): Promise<unknown> => {
      const s = createMemberDnsServer(records, { peers: () => names.peers(), log, ...(opts.registry ? { registry: opts.registry } : {}) });
      try {
        await s.listen(at);
        server = s;
        serving = ip;
        return undefined;
      } catch (err) {
        await s.close().catch(() => undefined);
        return err;
      }
    };
    let err = await attempt();
    if (err !== undefined && (err as NodeJS.ErrnoException).code === "EADDRNOTAVAIL" && (await loopback("add", ip))) {
      onLoopback = ip;
      err = await attempt();
    }
    if (err !== undefined) {
      // No privileges for port 53 or loopback: the endpoint serves on, its clients just get no member names.
      log.warn({ err, address: at }, "dns: cannot serve member names; clients get no DNS config");
      if (onLoopback !== undefined) await loopback("del", onLoopback);
      onLoopback = undefined;
      return;
    }
    log.info({ address: at, loopback: onLoopback !== undefined }, "dns: serving member names");
  };

  return {
    members: {
      join: async (m) => {
        await logged.join(m);
        names.join(m);
      },
      leave: async (m) => {
        await logged.leave(m);
        names.leave(m);
      },
    },
    elements: ({ networkService }) => [
      dnscontext.newServer(() =>
        serving === undefined
          ? []
          : [{ dnsServerIps: [port === 53 ? serving : formatServerAddress({ host: serving, port })], searchDomains: [networkService] }],
      ),
    ],
    async start(v) {
      await listen(v.selfIp);
      unsubscribe = v.subscribe(() => {
        // The clients refresh after a reset; until the server moved they get no DNS config, then the next one.
        moving = moving.then(async () => {
          if (serving === v.selfIp) return;
          await stop();
          await listen(v.selfIp);
        });
      });
    },
    settled: () => moving,
    async close() {
      unsubscribe?.();
      await moving;
      await stop();
    },
  };
}
