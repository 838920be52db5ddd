/**
 * The interdomain test's DNS server as a process, so it can run in its own network namespace
 * (`ip netns exec <ns> node domains-dns.fixture.js <ip:port> <name=url>…`): it answers SRV and A for the names
 * given, logs `domains dns serving` (a pino-shaped line) once listening and stops on SIGTERM.
 */
import { once } from "node:events";
import { fileURLToPath } from "node:url";
import { createDomainsDns } from "@nsm-ts/testing/dns";

/** This file, to spawn. */
export const DOMAINS_DNS_SCRIPT = fileURLToPath(import.meta.url);

if (process.argv[1] === DOMAINS_DNS_SCRIPT) {
  const [listen, ...records] = process.argv.slice(2);
  const dns = await createDomainsDns(listen);
  for (const r of records) {
    const i = r.indexOf("=");
    dns.set(r.slice(0, i), r.slice(i + 1));
  }
  process.stdout.write(`${JSON.stringify({ level: 30, msg: "domains dns serving", listen })}\n`);
  await once(process, "SIGTERM");
  await dns.close();
  process.exit(0);
}
