/** Test helpers of the DNS tests (`@nsm-ts/testing/dns`): small authoritative servers on loopback and a silent UDP socket. */
import { createSocket, type Socket } from "node:dgram";
import { once } from "node:events";
import {
  createDnsServer,
  type DnsHandler,
  type DnsServer,
  type DnsServerOptions,
  dnsChain,
  MemoryRecords,
  newMemoryHandler,
  Rcode,
  replyTo,
} from "@nsm-ts/sdk/dns";

/** Closes what a test started. */
export class Cleanup {
  private readonly fns: Array<() => Promise<void> | void> = [];
  add(fn: () => Promise<void> | void): void {
    this.fns.push(fn);
  }
  async run(): Promise<void> {
    for (const fn of this.fns.splice(0).reverse()) await fn();
  }
}

/** NXDOMAIN for everything (the end of a test server's chain). */
export const nxdomain: DnsHandler = { name: "nxdomain", serve: async (req) => replyTo(req.query, Rcode.NXDOMAIN) };

/** A server on 127.0.0.1 answering `names` (name → IPs) and NXDOMAIN otherwise; returns it and its `ip:port`. */
export async function namesServer(
  cleanup: Cleanup,
  names: Record<string, string[]>,
  opts: DnsServerOptions = {},
): Promise<{ server: DnsServer; records: MemoryRecords; at: string }> {
  const records = new MemoryRecords();
  for (const [n, ips] of Object.entries(names)) records.set(n, ips);
  const server = createDnsServer(dnsChain(newMemoryHandler(records), nxdomain), opts);
  const a = await server.listen("127.0.0.1:0");
  cleanup.add(() => server.close());
  return { server, records, at: `${a.host}:${a.port}` };
}

/** A UDP socket on 127.0.0.1 that reads queries and never answers (a dead server). */
export async function silentServer(cleanup: Cleanup): Promise<{ sock: Socket; at: string; received: () => number }> {
  const sock = createSocket("udp4");
  let n = 0;
  sock.on("message", () => n++);
  sock.bind(0, "127.0.0.1");
  await once(sock, "listening");
  cleanup.add(() => {
    sock.close();
  });
  return { sock, at: `127.0.0.1:${sock.address().port}`, received: () => n };
}

export { createDomainsDns, type DomainsDns } from "./domains.js";
