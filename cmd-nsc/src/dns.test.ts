/** cmd-nsc's DNS on loopback with a temp resolver config: nothing before a DNS config, takeover, update, restore. */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { silentLogger } from "@nsm-ts/base/log";
import { buildQuery, type DnsMessage, type DnsServerAddress, exchangeUdp } from "@nsm-ts/sdk/dns";
import { Cleanup, namesServer } from "@nsm-ts/testing/dns";
import { expect } from "chai";
import { startClientDns } from "./dns.js";

const ORIGINAL = "nameserver 198.51.100.10\nsearch cluster.local\n";
const ipsOf = (m: DnsMessage): string[] => (m.packet.answers ?? []).map((a) => String("data" in a ? a.data : ""));

describe("cmd-nsc dns", () => {
  let dir = "";
  let resolvConfPath = "";
  const cleanup = new Cleanup();
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "nsc-dns-"));
    resolvConfPath = join(dir, "resolv.conf");
    writeFileSync(resolvConfPath, ORIGINAL);
  });
  afterEach(async () => {
    await cleanup.run();
    rmSync(dir, { recursive: true, force: true });
  });

  const cfg = () => ({ localDnsServerEnabled: true, localDnsServerAddress: "127.0.0.1:0", resolvConfPath, dnsQueryTimeout: 2000 });

  it("starts nothing until a connection brings a DNS config, then serves it and points the resolver config at it until close", async () => {
    const member = await namesServer(cleanup, { "nsc-2.my-vl3": ["169.254.50.2"] });
    const dns = await startClientDns(cfg(), silentLogger);
    if (!dns) throw new Error("enabled DNS returned nothing");
    cleanup.add(() => dns.close());
    dns.store.set("c0", []);
    await dns.settled();
    expect(dns.address(), "no forwarder without a DNS config").to.equal(undefined);
    expect(readFileSync(resolvConfPath, "utf8")).to.equal(ORIGINAL);

    dns.store.set("c1", [{ dnsServerIps: [member.at], searchDomains: ["my-vl3"] }]);
    await dns.ready;
    const conf = readFileSync(resolvConfPath, "utf8");
    expect(conf).to.match(/^nameserver 127\.0\.0\.1$/m);
    expect(conf).to.match(/^search my-vl3 cluster\.local$/m);
    const at = dns.address() as DnsServerAddress;
    expect(ipsOf(await exchangeUdp(at, buildQuery("nsc-2.my-vl3.", "A"), { timeoutMs: 5000 }))).to.deep.equal(["169.254.50.2"]);

    // A second connection with another domain: the search list follows.
    dns.store.set("c2", [{ dnsServerIps: [member.at], searchDomains: ["other"] }]);
    await dns.settled();
    expect(readFileSync(resolvConfPath, "utf8")).to.match(/^search my-vl3 other cluster\.local$/m);

    await dns.close();
    expect(readFileSync(resolvConfPath, "utf8")).to.equal(ORIGINAL);
    let answered = true;
    await exchangeUdp(at, buildQuery("nsc-2.my-vl3.", "A"), { timeoutMs: 300 }).catch(() => (answered = false));
    expect(answered, "the forwarder is gone").to.equal(false);
  });

  it("a forwarder that cannot bind is logged and fails nothing; disabled DNS adds no element", async () => {
    const member = await namesServer(cleanup, {});
    const busy = await startClientDns({ ...cfg(), localDnsServerAddress: member.at }, silentLogger);
    cleanup.add(() => busy?.close());
    busy?.store.set("c1", [{ dnsServerIps: ["169.254.50.53"], searchDomains: ["my-vl3"] }]);
    await busy?.settled();
    expect(busy?.address()).to.equal(undefined);
    expect(readFileSync(resolvConfPath, "utf8")).to.equal(ORIGINAL);
    expect(await startClientDns({ ...cfg(), localDnsServerEnabled: false }, silentLogger)).to.equal(undefined);
  });
});
