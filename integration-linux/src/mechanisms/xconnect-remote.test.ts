import { CallContext } from "@nsm-ts/base/context";
import { chain, handler } from "@nsm-ts/sdk/networkservice";
import { createKernelForwarder, getLink, listOwned, ownerPrefix, runCommand } from "@nsm-ts/sdk-linux";
import { expect } from "chai";
import { type KernelFixture, ping } from "../kernel/fixture.js";
import { type Addresses, endpoint, forwarderPart, ip, owned, refreshOf, request, underlay, useKernelFixture } from "./xconnect.fixture.js";

describe("kernel mechanisms: forwarder cross-connects in real namespaces", function () {
  this.timeout(60000);
  let fx: KernelFixture;
  let owner: string;
  useKernelFixture((f, o) => {
    fx = f;
    owner = o;
  });

  describe("remote KERNEL → VXLAN → KERNEL across two forwarder namespaces", () => {
    const v4 = { family: "IPv4", t1: "198.51.100.1", t2: "198.51.100.2", len: 24, url: "tcp://198.51.100.2:5001", mtu: 1450 };
    const v6 = { family: "IPv6", t1: "fd00:100::1", t2: "fd00:100::2", len: 64, url: "tcp://[fd00:100::2]:5001", mtu: 1430 };
    for (const u of [
      { ...v4, join: "bridge" as const },
      { ...v6, join: "bridge" as const },
      { ...v4, join: "tc" as const },
    ]) {
      it(`tunnels packets over an ${u.family} underlay (${u.join} join) with an MTU reduced by the VXLAN overhead, and cleans up`, async function () {
        if (u.join === "tc" && (await runCommand(["tc", "-V"]).catch(() => undefined))?.code !== 0) {
          process.stderr.write("      skipping: tc is not installed\n");
          this.skip();
        }
        const a = await fx.netns("a");
        const b = await fx.netns("b");
        const f1 = await fx.netns("f1");
        const f2 = await fx.netns("f2");
        // The underlay between the two "nodes".
        await underlay(f1, f2, `${u.t1}/${u.len}`, `${u.t2}/${u.len}`);
        const o1 = `${owner}-1`;
        const o2 = `${owner}-2`;
        const fwd1 = createKernelForwarder({ owner: o1, forwarderNetnsUrl: f1.path, tunnelIp: u.t1, remoteJoin: u.join });
        const fwd2 = createKernelForwarder({ owner: o2, forwarderNetnsUrl: f2.path, tunnelIp: u.t2, remoteJoin: u.join });
        const plan: Addresses = { src: ["169.254.30.1/32", "fd00:30::1/128"], dst: ["169.254.30.2/32", "fd00:30::2/128"] };
        const node2 = [...forwarderPart(fwd2, "unix:///tmp/nse.sock"), ...endpoint(b, () => plan)];
        const h = handler(chain(...forwarderPart(fwd1, u.url), ...node2));
        const ctx = CallContext.create();

        const started = performance.now();
        const conn = await h.request(ctx, request("r1", a, "nsm-1"));
        const setupMs = performance.now() - started;
        expect(conn.context?.MTU).to.equal(u.mtu);
        const la = await getLink(ip, a, "nsm-1");
        expect(la?.mtu).to.equal(u.mtu);
        const [vx1] = (await listOwned(ip, f1, ownerPrefix(o1))).filter((l) => l.kind === "vxlan");
        const [vx2] = (await listOwned(ip, f2, ownerPrefix(o2))).filter((l) => l.kind === "vxlan");
        expect(vx1?.vxlan?.vni).to.be.a("number").and.equal(vx2?.vxlan?.vni);
        expect((vx1?.vxlan?.vni ?? 1) % 2).to.equal(0); // src t1 ≤ dst t2 → even
        expect(vx1?.vxlan).to.include({ local: u.t1, remote: u.t2, port: 4789 });
        expect(vx1?.mtu).to.equal(u.mtu);
        expect(conn.path?.pathSegments[0]?.metrics).to.deep.include({
          server_interface: "KERNEL/nsm-1",
          client_interface: `VXLAN/${vx1?.name}`,
        });
        const pingStart = performance.now();
        expect(await ping(a, "169.254.30.2")).to.equal(true);
        const firstPingMs = performance.now() - pingStart;
        expect(await ping(a, "fd00:30::2")).to.equal(true);
        // A full-size packet fits (MTU - 28 bytes of IPv4+ICMP headers) with DF set; one byte more does not.
        const dfPing = (size: number) => runCommand(a.execArgv(["ping", "-c1", "-W1", "-M", "do", "-s", String(size), "169.254.30.2"]));
        expect((await dfPing(u.mtu - 28)).code).to.equal(0);
        expect((await dfPing(u.mtu - 27)).code).to.not.equal(0);
        process.stderr.write(
          `      remote setup (${u.family} underlay, ${u.join}) ${setupMs.toFixed(1)} ms, first ping ${firstPingMs.toFixed(1)} ms\n`,
        );

        const before = la?.ifindex;
        const again = await h.request(ctx, refreshOf(conn));
        expect((await getLink(ip, a, "nsm-1"))?.ifindex).to.equal(before);
        expect((await listOwned(ip, f1, ownerPrefix(o1))).find((l) => l.kind === "vxlan")?.ifindex).to.equal(vx1?.ifindex);

        // Forwarder 1 restarts (node 2 keeps running): its next refresh adopts the pod link and the VXLAN leg.
        const fwd1b = createKernelForwarder({ owner: o1, forwarderNetnsUrl: f1.path, tunnelIp: u.t1, remoteJoin: u.join });
        const hb = handler(chain(...forwarderPart(fwd1b, u.url), ...node2));
        const adopted = await hb.request(ctx, refreshOf(again));
        expect((await getLink(ip, a, "nsm-1"))?.ifindex).to.equal(before);
        expect((await listOwned(ip, f1, ownerPrefix(o1))).find((l) => l.kind === "vxlan")?.ifindex).to.equal(vx1?.ifindex);
        expect(await ping(a, "169.254.30.2")).to.equal(true);

        await hb.close(ctx, adopted);
        expect(await owned(o1, a, f1)).to.deep.equal([]);
        expect(await owned(o2, b, f2)).to.deep.equal([]);
        expect(fwd1b.vnis.size + fwd2.vnis.size).to.equal(0);
      });
    }
  });
});
