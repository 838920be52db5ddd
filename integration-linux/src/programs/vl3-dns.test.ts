/**
 * cmd-nse-vl3's member-name server as processes with the NOOP data plane (no root needed): the prefix pool is in
 * 127.0.0.0/8, so each endpoint's own vL3 address is already local (loopback) and its server binds there on
 * NSM_DNS_PORT. Two endpoints on two nodes, a client on each node: each endpoint answers both clients' names —
 * its own from its records, the other's by asking its peer (the fan-out) — and after a client leaves, its name
 * is NXDOMAIN everywhere.
 */
import { buildQuery, exchange, rcodeOf } from "@nsm-ts/sdk/dns";
import { expect } from "chai";
import { type Program, type ProgramSet, startNode, startRegistry, useProgramSet } from "./harness.js";

const SERVICE = "vl3-dns";
const POOL = "127.77.0.0/16";
// Off 53 so the test needs no privileges; the same on both endpoints (they ask each other on it).
const PORT = 10_053;

/** The A records of `name` at `host:PORT` (empty for NXDOMAIN, with the rcode). */
async function lookup(host: string, name: string): Promise<{ rcode: number; addrs: string[] }> {
  const answer = await exchange({ host, port: PORT }, buildQuery(name, "A"), { timeoutMs: 3000 });
  const addrs = (answer.packet.answers ?? []).flatMap((a) => (a.type === "A" ? [String(a.data)] : []));
  return { rcode: rcodeOf(answer), addrs };
}

describe("programs: cmd-nse-vl3 member names (NOOP data plane)", function () {
  this.timeout(90_000);
  let set: ProgramSet;
  useProgramSet((s) => {
    set = s;
  });

  it("each endpoint resolves the members of both, the other's through its peer; a leave removes the name", async () => {
    const { url: registryUrl } = await startRegistry(set, { NSM_IPAM_PREFIX_POOL: POOL, NSM_IPAM_PREFIX_LENGTH: "24" });
    const [n1, n2] = await Promise.all([startNode(set, 1, registryUrl), startNode(set, 2, registryUrl)]);
    const endpoint = (n: 1 | 2, socket: string): Program =>
      set.spawn(
        "cmd-nse-vl3",
        {
          NSM_NAME: `vl3-${n}`,
          NSM_CONNECT_TO: socket,
          NSM_LISTEN_ON: set.socket(`vl3-${n}.sock`),
          NSM_SERVICE_NAMES: SERVICE,
          NSM_PREFIX_SERVER_URL: registryUrl,
          NSM_VL3_PREFIX: POOL,
          NSM_DNS_PORT: String(PORT),
        },
        `vl3-${n}`,
      );
    const e1 = endpoint(1, n1.socket);
    const e2 = endpoint(2, n2.socket);
    const [d1, d2] = await Promise.all([
      e1.waitFor("dns: serving member names", () => true, 30_000),
      e2.waitFor("dns: serving member names", () => true, 30_000),
    ]);
    // 127/8 is local already: nothing went on loopback.
    expect(d1.loopback).to.equal(false);
    const servers = new Map<string, string>([
      ["vl3-1", String(d1.address).replace(/:\d+$/, "")],
      ["vl3-2", String(d2.address).replace(/:\d+$/, "")],
    ]);
    await e2.waitFor("vl3: connected to peer", (r) => r.peer === "vl3-1", 30_000);
    // Both sides know the other as a peer (the one that connected, and the one it connected to).
    await e1.waitFor("vL3 member joined", (r) => r.member === "vl3-2" && r.peer === true, 15_000);
    await e2.waitFor("vL3 member joined", (r) => r.member === "vl3-1" && r.peer === true, 15_000);

    const client = (name: string, socket: string): Program =>
      // The client's own forwarder would rewrite this machine's resolver config: not here (integration-linux/src/cluster does it in a netns).
      set.spawn(
        "cmd-nsc",
        { NSM_NAME: name, NSM_CONNECT_TO: socket, NSM_NETWORK_SERVICES: `noop://${SERVICE}`, NSM_LOCAL_DNS_SERVER_ENABLED: "false" },
        name,
      );
    const clients = [
      { name: "nsc-a", p: client("nsc-a", n1.socket) },
      { name: "nsc-b", p: client("nsc-b", n2.socket) },
    ];
    const members: Array<{ name: string; addr: string; at: string }> = [];
    for (const { name, p } of clients) {
      const conn = (await p.waitFor("connected", () => true, 30_000)).connection as {
        srcIpAddrs: string[];
        networkServiceEndpointName: string;
      };
      members.push({ name, addr: (conn.srcIpAddrs[0] ?? "").split("/")[0] ?? "", at: conn.networkServiceEndpointName });
    }
    for (const m of members) {
      // Whichever endpoint served the client (round robin), the other one has its name only through its peer.
      for (const [ep, host] of servers) {
        const r = await lookup(host, `${m.name}.${SERVICE}.`);
        expect(r, `${m.name} (served by ${m.at}) asked at ${ep}`).to.deep.equal({ rcode: 0, addrs: [m.addr] });
      }
    }
    const absent = await lookup(servers.get("vl3-1") ?? "", `nobody.${SERVICE}.`);
    expect(absent.rcode, "a name no endpoint holds").to.equal(3);

    const [a] = members;
    const holder = a?.at === "vl3-1" ? e1 : e2;
    const left = holder.waitFor("vL3 member left", (r) => r.member === "nsc-a", 15_000);
    expect((await clients[0]?.p.stop("SIGTERM"))?.code).to.equal(0);
    await left;
    for (const host of servers.values()) expect((await lookup(host, `nsc-a.${SERVICE}.`)).rcode).to.equal(3);

    for (const p of [clients[1]?.p, e1, e2]) expect((await p?.stop("SIGTERM"))?.code, p?.output()).to.equal(0);
  });
});
