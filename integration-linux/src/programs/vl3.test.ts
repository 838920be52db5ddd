/**
 * cmd-nse-vl3 as a process with the NOOP data plane (no root needed): two vL3 endpoints on two nodes take
 * distinct prefixes from the registry's pool, the later name connects to the earlier one through both nodes, a
 * client gets an address of its endpoint's prefix, the member hook's default log reports members, and when an
 * endpoint stops (SIGTERM, exit 0) the other follows the leave through its registry watch.
 */
import { Health, HealthCheckResponse_ServingStatus } from "@nsm-ts/api/health";
import { createClient, dial } from "@nsm-ts/base/grpc";
import { expect } from "chai";
import { type Program, type ProgramSet, startNode, startRegistry, useProgramSet } from "./harness.js";

const SERVICE = "vl3-noop";

describe("programs: cmd-nse-vl3 (NOOP data plane)", function () {
  this.timeout(90_000);
  let set: ProgramSet;
  useProgramSet((s) => {
    set = s;
  });

  it("two endpoints take distinct prefixes and connect once; a member gets an address; a leave is followed", async () => {
    const { url: registryUrl } = await startRegistry(set, { NSM_IPAM_PREFIX_POOL: "169.254.0.0/16", NSM_IPAM_PREFIX_LENGTH: "24" });
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
          NSM_VL3_PREFIX: "169.254.0.0/16",
          // Names are vl3-dns.test.ts's: here the own address is not local and would go on this netns's loopback.
          NSM_DNS_ENABLED: "false",
        },
        `vl3-${n}`,
      );
    const e1 = endpoint(1, n1.socket);
    const e2 = endpoint(2, n2.socket);
    const [s1, s2] = await Promise.all([
      e1.waitFor("cmd-nse-vl3 serving", () => true, 30_000),
      e2.waitFor("cmd-nse-vl3 serving", () => true, 30_000),
    ]);
    expect(s1.prefix).to.match(/^169\.254\.\d+\.0\/24$/);
    expect(s2.prefix).to.match(/^169\.254\.\d+\.0\/24$/);
    expect(s1.prefix).to.not.equal(s2.prefix);

    const peer = await e2.waitFor("vl3: connected to peer", (r) => r.peer === "vl3-1", 30_000);
    expect(peer.src).to.deep.equal([s2.address]);
    // The member hook hears of the peer on both sides: the one that connected and the one it connected to.
    await e1.waitFor("vL3 member joined", (r) => r.member === "vl3-2" && r.peer === true, 15_000);
    const dialled = await e2.waitFor("vL3 member joined", (r) => r.member === "vl3-1" && r.peer === true, 15_000);
    expect(dialled.addresses).to.deep.equal([String(s1.address).split("/")[0]]);

    const channel = dial(set.socket("vl3-1.sock"));
    try {
      const res = await createClient(Health, channel).check({ service: "networkservice.NetworkService" }, { timeoutMs: 5000 });
      expect(res.status).to.equal(HealthCheckResponse_ServingStatus.SERVING);
    } finally {
      channel.close();
    }

    const nsc = set.spawn("cmd-nsc", { NSM_NAME: "nsc-1", NSM_CONNECT_TO: n2.socket, NSM_NETWORK_SERVICES: `noop://${SERVICE}` }, "nsc-1");
    const conn = (await nsc.waitFor("connected", () => true, 30_000)).connection as {
      srcIpAddrs: string[];
      networkServiceEndpointName: string;
    };
    // Either endpoint may serve it (round robin); the address is of that endpoint's prefix, not its own address.
    const served = conn.networkServiceEndpointName === "vl3-1" ? s1 : s2;
    const net = String(served.prefix).split(".").slice(0, 3).join(".");
    expect(conn.srcIpAddrs[0]?.startsWith(`${net}.`), `${conn.srcIpAddrs[0]} in ${served.prefix}`).to.equal(true);
    expect(conn.srcIpAddrs[0]).to.not.equal(served.address);
    expect((await nsc.stop("SIGTERM")).code, nsc.output()).to.equal(0);

    const left = e2.waitFor("vl3: disconnected from peer", (r) => r.peer === "vl3-1", 30_000);
    expect((await e1.stop("SIGTERM")).code, e1.output()).to.equal(0);
    await left;
    await e2.waitFor("vL3 member left", (r) => r.member === "vl3-1", 15_000);
    expect((await e2.stop("SIGTERM")).code, e2.output()).to.equal(0);
  });
});
