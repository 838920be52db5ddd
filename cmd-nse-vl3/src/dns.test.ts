/** cmd-nse-vl3's member-name server without processes: names, the clients' DNS config, a prefix reset, close. */
import { create } from "@bufbuild/protobuf";
import { ConnectionSchema, NetworkServiceRequestSchema } from "@nsm-ts/api/networkservice";
import { CallContext } from "@nsm-ts/base/context";
import { silentLogger } from "@nsm-ts/base/log";
import { buildQuery, exchange, rcodeOf } from "@nsm-ts/sdk/dns";
import { ipam } from "@nsm-ts/sdk/networkservice";
import { expect } from "chai";
import { createMemberDns, type MemberDns } from "./dns.js";

// 127/8 is local on Linux: the own addresses bind without root; a port off 53 needs no privileges.
const PORT = 10_153;

async function lookup(host: string, name: string, timeoutMs = 2000): Promise<{ rcode: number; addrs: string[] }> {
  const answer = await exchange({ host, port: PORT }, buildQuery(name, "A"), { timeoutMs });
  return { rcode: rcodeOf(answer), addrs: (answer.packet.answers ?? []).flatMap((a) => (a.type === "A" ? [String(a.data)] : [])) };
}

/** The DNS configs the endpoint element puts on a Request. */
async function configsOf(dns: MemberDns, v: ipam.vl3.Vl3Ipam): Promise<Array<{ dnsServerIps: string[]; searchDomains: string[] }>> {
  const [el] = dns.elements({ ipam: v, networkService: "vl3" });
  if (!el) throw new Error("no element");
  const req = create(NetworkServiceRequestSchema, { connection: create(ConnectionSchema, { id: "c1", networkService: "vl3" }) });
  const conn = await el.request(CallContext.create({ log: silentLogger }), req, {
    request: async (_ctx, r) => r.connection ?? create(ConnectionSchema),
    close: async () => undefined,
  });
  return (conn.context?.dnsContext?.configs ?? []).map((c) => ({ dnsServerIps: [...c.dnsServerIps], searchDomains: [...c.searchDomains] }));
}

describe("cmd-nse-vl3 member-name server", () => {
  let dns: MemberDns | undefined;
  afterEach(async () => {
    await dns?.close();
    dns = undefined;
  });

  it("names members on the own address, gives clients that server, and moves with a prefix reset", async () => {
    const v = new ipam.vl3.Vl3Ipam("127.78.0.0/24");
    dns = createMemberDns({ nameTemplates: ["{{name}}.{{networkService}}."], port: PORT, log: silentLogger });
    expect(await configsOf(dns, v), "nothing before it listens").to.deep.equal([]);
    await dns.start(v);
    expect(await configsOf(dns, v)).to.deep.equal([{ dnsServerIps: [`127.78.0.0:${PORT}`], searchDomains: ["vl3"] }]);
    const member = { connId: "c1", name: "nsc-1", networkService: "vl3", labels: {}, addresses: ["127.78.0.2"], peer: false };
    await dns.members.join(member);
    expect(await lookup("127.78.0.0", "nsc-1.vl3.")).to.deep.equal({ rcode: 0, addrs: ["127.78.0.2"] });

    v.reset("127.79.0.0/24");
    await dns.settled();
    expect(await configsOf(dns, v)).to.deep.equal([{ dnsServerIps: [`127.79.0.0:${PORT}`], searchDomains: ["vl3"] }]);
    expect(await lookup("127.79.0.0", "nsc-1.vl3.")).to.deep.equal({ rcode: 0, addrs: ["127.78.0.2"] });

    await dns.members.leave(member);
    expect((await lookup("127.79.0.0", "nsc-1.vl3.")).rcode, "gone after leave").to.equal(3);
    await dns.close();
    dns = undefined;
    await lookup("127.79.0.0", "nsc-1.vl3.", 300).then(
      () => expect.fail("still answering after close"),
      () => undefined,
    );
  });
});
