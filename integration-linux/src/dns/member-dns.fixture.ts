/**
 * A member-name DNS server as a process, so a test can run it inside a netns it created
 * (`ip netns exec <ns> node member-dns.fixture.js`): listens on MEMBER_DNS_LISTEN (`ip:port`), prints
 * `{"listening": "ip:port"}` on stdout, then reads JSON lines on stdin — `{"set": name, "ips": [...]}` or
 * `{"delete": name}` — answering `{"ok": n}` after each. Exits when stdin closes.
 */
import { createInterface } from "node:readline";
import { createMemberDnsServer, formatServerAddress, MemoryRecords } from "@nsm-ts/sdk/dns";

const records = new MemoryRecords();
const server = createMemberDnsServer(records);
const at = await server.listen(process.env.MEMBER_DNS_LISTEN ?? "127.0.0.1:0");
process.stdout.write(`${JSON.stringify({ listening: formatServerAddress(at) })}\n`);
let n = 0;
const lines = createInterface({ input: process.stdin });
lines.on("line", (line) => {
  const cmd = JSON.parse(line) as { set?: string; ips?: string[]; delete?: string };
  if (cmd.set !== undefined) records.set(cmd.set, cmd.ips ?? []);
  if (cmd.delete !== undefined) records.delete(cmd.delete);
  process.stdout.write(`${JSON.stringify({ ok: ++n })}\n`);
});
lines.on("close", () => {
  void server.close();
});
