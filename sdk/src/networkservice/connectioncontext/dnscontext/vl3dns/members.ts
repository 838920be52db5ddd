/**
 * Member names from a vL3 endpoint's member reports (`ipam.vl3.newMemberServer`'s listener, cmd-nse-vl3's
 * `RunOptions.members`): each client's names (by template) point at its vL3 addresses in a `MemoryRecords`; each
 * peer endpoint's own address is a member-name server to ask (`peers()`, port 53). The alternative to the
 * `vl3dns` elements for a program that already reports its members.
 */
import { create } from "@bufbuild/protobuf";
import { ConnectionSchema } from "@nsm-ts/api/networkservice";
import type { DnsServerAddress } from "../../../../dns/exchange.js";
import type { MemoryRecords } from "../../../../dns/memory.js";
import type { Vl3Member, Vl3MemberListener } from "../../../ipam/vl3/members.js";
import { compileNameTemplate, DEFAULT_NAME_TEMPLATE } from "./names.js";

/** A member listener that keeps names and peers; `peers()` is what `createMemberDnsServer` fans out to. */
export interface MemberNames extends Vl3MemberListener {
  /** The peers' member-name servers (their own vL3 addresses, port 53). */
  peers(): DnsServerAddress[];
}

/** Creates the listener over `records`; `nameTemplates` as in `Vl3DnsServerOptions`; errors are the caller's to log. */
export function newMemberNames(records: MemoryRecords, opts: { nameTemplates?: readonly string[]; dnsPort?: number } = {}): MemberNames {
  const templates = (opts.nameTemplates ?? [DEFAULT_NAME_TEMPLATE]).map(compileNameTemplate);
  const names = new Map<string, readonly string[]>();
  const peers = new Map<string, readonly string[]>();
  const namesOf = (m: Vl3Member): string[] =>
    templates.map((t) =>
      t(
        create(ConnectionSchema, {
          id: m.connId,
          networkService: m.networkService,
          labels: { ...m.labels },
          path: { pathSegments: [{ name: m.name }] },
        }),
      ),
    );
  return {
    join(m) {
      if (m.peer) {
        peers.set(m.connId, m.addresses);
        return;
      }
      const now = m.addresses.length > 0 ? namesOf(m) : [];
      for (const n of names.get(m.connId) ?? []) if (!now.includes(n)) records.delete(n);
      for (const n of now) records.set(n, m.addresses);
      names.set(m.connId, now);
    },
    leave(m) {
      peers.delete(m.connId);
      for (const n of names.get(m.connId) ?? []) records.delete(n);
      names.delete(m.connId);
    },
    peers: () => [...new Set([...peers.values()].flat())].map((host) => ({ host, port: opts.dnsPort ?? 53 })),
  };
}
