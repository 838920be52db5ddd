/**
 * The member-name server of a vL3 endpoint: answers the names in its `MemoryRecords` and asks its peers (the
 * other vL3 endpoints' member-name servers) for the rest, one hop only (`newFanoutHandler` in peer mode); a
 * name nobody holds is NXDOMAIN.
 */
import type { DnsServerAddress } from "./exchange.js";
import { type FanoutOptions, newFanoutHandler } from "./fanout.js";
import { dnsChain } from "./handler.js";
import { type MemoryHandlerOptions, type MemoryRecords, newMemoryHandler, newNoLoopHandler } from "./memory.js";
import { Rcode, replyTo } from "./message.js";
import { createDnsServer, type DnsServer, type DnsServerOptions } from "./server.js";

/** Options of `createMemberDnsServer`. */
export interface MemberDnsServerOptions extends DnsServerOptions, MemoryHandlerOptions, Omit<FanoutOptions, "clock"> {
  /** The peers' member-name servers, read on every query that misses; default none. */
  peers?: () => readonly DnsServerAddress[];
}

/** A member-name server and the records it answers from. */
export interface MemberDnsServer extends DnsServer {
  readonly records: MemoryRecords;
}

/** Creates the member-name server over `records` (listen with `listen("ip:port")`). */
export function createMemberDnsServer(records: MemoryRecords, opts: MemberDnsServerOptions = {}): MemberDnsServer {
  const peers = opts.peers ?? (() => []);
  let self: DnsServerAddress | undefined;
  const chain = dnsChain(
    newNoLoopHandler(),
    newMemoryHandler(records, opts),
    newFanoutHandler(() => peers().filter((p) => !(self && p.host === self.host && p.port === self.port)), {
      peers: true,
      ...(opts.timeoutMs !== undefined ? { timeoutMs: opts.timeoutMs } : {}),
      ...(opts.clock ? { clock: opts.clock } : {}),
      ...(opts.exchange ? { exchange: opts.exchange } : {}),
    }),
    { name: "nxdomain", serve: async (req) => replyTo(req.query, Rcode.NXDOMAIN) },
  );
  const server = createDnsServer(chain, opts);
  return {
    records,
    get address() {
      return server.address;
    },
    async listen(address) {
      self = await server.listen(address);
      return self;
    },
    stats: () => server.stats(),
    close: () => server.close(),
  };
}
