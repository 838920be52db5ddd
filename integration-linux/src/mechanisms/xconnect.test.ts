import { randomBytes } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import {
  type Connection,
  ConnectionContextSchema,
  type NetworkServiceRequest,
  NetworkServiceRequestSchema,
} from "@nsm-ts/api/networkservice";
import { MockClock } from "@nsm-ts/base/clock";
import { CallContext } from "@nsm-ts/base/context";
import { Code, StatusError } from "@nsm-ts/base/status";
import {
  begin,
  chain,
  clienturl,
  handler,
  mechanisms,
  mechanismtranslation,
  metadata,
  type NetworkServiceElement,
  type NetworkServiceHandler,
  timeout,
  updatepath,
} from "@nsm-ts/sdk/networkservice";
import {
  adoptOrRemoveLeftovers,
  Batch,
  checkKernelCapable,
  createIpExecutor,
  createKernelForwarder,
  getLink,
  type KernelForwarder,
  kernel,
  listLinks,
  listOwned,
  listRoutes,
  type Netns,
  ownerPrefix,
  runCommand,
} from "@nsm-ts/sdk-linux";
import { expect } from "chai";
import { KernelFixture, ping, skipUnlessKernel } from "../kernel/fixture.js";

const ip = createIpExecutor();

/** A minimal IPAM: a fixed context per connection, changeable between requests. */
interface Addresses {
  src: string[];
  dst: string[];
  srcRoutes?: string[];
  /** ethernet_context src_mac / dst_mac. */
  macs?: [string, string];
}
function ipam(plan: (conn: Connection) => Addresses): NetworkServiceElement {
  return {
    name: "test-ipam",
    async request(_ctx, req, next) {
      const conn = req.connection;
      if (conn) {
        const a = plan(conn);
        const mtu = conn.context?.MTU ?? 0;
        conn.context = create(ConnectionContextSchema, {
          MTU: mtu,
          ipContext: { srcIpAddrs: a.src, dstIpAddrs: a.dst, srcRoutes: (a.srcRoutes ?? []).map((prefix) => ({ prefix })) },
          ...(a.macs ? { ethernetContext: { srcMac: a.macs[0], dstMac: a.macs[1] } } : {}),
        });
      }
      return next.request(_ctx, req);
    },
    close: (ctx, conn, next) => next.close(ctx, conn),
  };
}

function endpoint(ns: Netns, plan: (conn: Connection) => Addresses): NetworkServiceElement[] {
  return [metadata.newServer(), mechanisms.newServer({ KERNEL: kernel.newServer({ netnsUrl: ns.path }) }), ipam(plan)];
}

function forwarderPart(fwd: KernelForwarder, nextHopUrl: string): NetworkServiceElement[] {
  return [
    metadata.newServer(),
    mechanisms.newServer(fwd.mechanisms),
    mechanismtranslation.newClient(),
    clienturl.newClient(nextHopUrl),
    ...fwd.clientMechanisms,
  ];
}

function request(id: string, clientNs: Netns, ifName: string): NetworkServiceRequest {
  return create(NetworkServiceRequestSchema, {
    connection: { id, networkService: "svc", path: { index: 0, pathSegments: [{ name: "fwd", id }] } },
    mechanismPreferences: [mechanisms.kernel.mechanism({ netnsUrl: clientNs.path, ifName })],
  });
}

function refreshOf(conn: Connection): NetworkServiceRequest {
  return create(NetworkServiceRequestSchema, { connection: conn });
}

async function owned(owner: string, ...nss: Netns[]): Promise<string[]> {
  const out: string[] = [];
  for (const ns of nss) for (const l of await listOwned(ip, ns, ownerPrefix(owner))) out.push(`${ns.name}/${l.name}`);
  return out;
}

describe("kernel mechanisms: forwarder cross-connects in real namespaces", function () {
  this.timeout(60000);
  let fx: KernelFixture;
  let owner: string;

  before(async function () {
    await skipUnlessKernel(this);
  });
  beforeEach(() => {
    fx = new KernelFixture();
    owner = `fwd-${randomBytes(3).toString("hex")}`;
  });
  afterEach(async () => {
    await fx.cleanup();
  });

  it("passes the privilege check as root", async () => {
    await checkKernelCapable();
  });

  describe("local KERNEL ↔ KERNEL", () => {
    let a: Netns;
    let e: Netns;
    let f: Netns;
    let h: NetworkServiceHandler;
    let ep: NetworkServiceElement[];
    let plan: Addresses;
    const ctx = CallContext.create();

    beforeEach(async () => {
      a = await fx.netns("a");
      e = await fx.netns("e");
      f = await fx.netns("f");
      // The endpoint also serves an address behind itself, reached through a src_route via the dst address.
      await new Batch(ip, e).setUp("lo").addAddress("lo", "203.0.113.10/32").commit();
      plan = { src: ["169.254.10.1/32", "fd00:10::1/128"], dst: ["169.254.10.2/32", "fd00:10::2/128"], srcRoutes: ["203.0.113.10/32"] };
      const fwd = createKernelForwarder({ owner, forwarderNetnsUrl: f.path });
      ep = endpoint(e, () => plan);
      h = handler(chain(...forwarderPart(fwd, "unix:///tmp/nse.sock"), ...ep));
    });

    it("creates the requested interface in the client netns, applies the context, and packets flow", async () => {
      const conn = await h.request(ctx, request("c1", a, "nsm-1"));
      const la = await getLink(ip, a, "nsm-1");
      expect(la?.kind).to.equal("veth");
      expect(la?.up).to.equal(true);
      expect(la?.addresses).to.include.members(["169.254.10.1/32", "fd00:10::1/128"]);
      expect(la?.owner).to.deep.equal({ owner, connectionId: "c1", role: "client" });
      const [le, ...more] = await listOwned(ip, e, ownerPrefix(owner));
      expect(more).to.have.length(0);
      expect(le?.name).to.match(/^svc-[0-9A-Za-z]{11}$/); // generated as upstream: prefix, '-', 15 chars in all
      expect(le?.addresses).to.include.members(["169.254.10.2/32", "fd00:10::2/128"]);
      expect(await listOwned(ip, f, ownerPrefix(owner))).to.have.length(0); // nothing stays in the forwarder's netns
      expect(conn.path?.pathSegments[0]?.metrics).to.deep.include({
        server_interface: "KERNEL/nsm-1",
        client_interface: `KERNEL/${le?.name}`,
      });
      expect(await ping(a, "169.254.10.2")).to.equal(true);
      expect(await ping(a, "fd00:10::2")).to.equal(true);
      expect(await ping(a, "203.0.113.10")).to.equal(true); // the src_route via the dst address as gateway
      const routes = await listRoutes(ip, a);
      expect(routes.find((r) => r.dst === "203.0.113.10/32")?.gateway).to.equal("169.254.10.2");
      await h.close(ctx, conn);
    });

    it("works with pods' netns given as file:///proc/<pid>/ns/net, as NSM clients and endpoints send them", async () => {
      const clientUrl = `file:///proc/${await fx.holder(a)}/ns/net`;
      const endpointUrl = `file:///proc/${await fx.holder(e)}/ns/net`;
      const fwd = createKernelForwarder({ owner, forwarderNetnsUrl: f.path });
      const hp = handler(
        chain(
          ...forwarderPart(fwd, "unix:///tmp/nse.sock"),
          metadata.newServer(),
          mechanisms.newServer({ KERNEL: kernel.newServer({ netnsUrl: endpointUrl, interfaceName: "nse-1" }) }),
          ipam(() => plan),
        ),
      );
      const req = request("p1", a, "nsm-1");
      const pref = req.mechanismPreferences[0];
      if (pref) pref.parameters.inodeURL = clientUrl;
      const conn = await hp.request(ctx, req);
      expect((await getLink(ip, a, "nsm-1"))?.owner?.role).to.equal("client");
      expect((await getLink(ip, e, "nse-1"))?.owner?.role).to.equal("endpoint");
      expect(await ping(a, "169.254.10.2")).to.equal(true);
      const again = await hp.request(ctx, refreshOf(conn));
      await hp.close(ctx, again);
      expect(await owned(owner, a, e, f)).to.deep.equal([]);
    });

    it("rejects a netns URL naming the sender's own process, which a forwarder cannot resolve", async () => {
      const req = request("s1", a, "nsm-1");
      const pref = req.mechanismPreferences[0];
      if (pref) pref.parameters.inodeURL = "file:///proc/thread-self/ns/net";
      const err = await h.request(ctx, req).then(
        () => undefined,
        (x: unknown) => x,
      );
      expect((err as StatusError).code).to.equal(Code.InvalidArgument);
      expect((err as StatusError).message).to.contain("thread-self");
    });

    it("refresh leaves the interfaces untouched, a changed context is applied in place, close removes both ends", async () => {
      const conn = await h.request(ctx, request("c1", a, "nsm-1"));
      const before = [(await getLink(ip, a, "nsm-1"))?.ifindex, (await listOwned(ip, e, ownerPrefix(owner)))[0]?.ifindex];
      const again = await h.request(ctx, refreshOf(conn));
      expect(again.mechanism?.parameters.name).to.equal("nsm-1");
      expect([(await getLink(ip, a, "nsm-1"))?.ifindex, (await listOwned(ip, e, ownerPrefix(owner)))[0]?.ifindex]).to.deep.equal(before);

      plan = { src: ["169.254.10.5/32"], dst: ["169.254.10.6/32"] };
      const changed = await h.request(ctx, refreshOf(again));
      const la = await getLink(ip, a, "nsm-1");
      expect(la?.ifindex).to.equal(before[0]);
      expect(la?.addresses.filter((x) => !x.startsWith("fe80"))).to.deep.equal(["169.254.10.5/32"]);
      expect((await listRoutes(ip, a)).some((r) => r.dst === "203.0.113.10/32")).to.equal(false);
      expect(await ping(a, "169.254.10.6")).to.equal(true);

      await h.close(ctx, changed);
      expect(await owned(owner, a, e, f)).to.deep.equal([]);
      expect(await getLink(ip, a, "nsm-1")).to.equal(undefined);
    });

    it("gives each end the MAC of the ethernet context, and changes it in place on refresh", async () => {
      plan = { ...plan, macs: ["02:00:5e:10:00:01", "02:00:5e:10:00:02"] };
      const conn = await h.request(ctx, request("c1", a, "nsm-1"));
      const la = await getLink(ip, a, "nsm-1");
      const le = (await listOwned(ip, e, ownerPrefix(owner)))[0];
      expect([la?.mac, le?.mac]).to.deep.equal(["02:00:5e:10:00:01", "02:00:5e:10:00:02"]);
      expect(await ping(a, "169.254.10.2")).to.equal(true);

      plan = { ...plan, macs: ["02:00:5e:10:00:03", "02:00:5e:10:00:02"] };
      const changed = await h.request(ctx, refreshOf(conn));
      const la2 = await getLink(ip, a, "nsm-1");
      expect([la2?.ifindex, la2?.mac]).to.deep.equal([la?.ifindex, "02:00:5e:10:00:03"]);
      expect(await ping(a, "169.254.10.2")).to.equal(true);
      await h.close(ctx, changed);
      expect(await owned(owner, a, e, f)).to.deep.equal([]);
    });

    it("rebuilds on refresh when an interface was deleted behind its back", async () => {
      const conn = await h.request(ctx, request("c1", a, "nsm-1"));
      await new Batch(ip, a).deleteLink("nsm-1").commit();
      const again = await h.request(ctx, refreshOf(conn));
      expect(await ping(a, "169.254.10.2")).to.equal(true);
      await h.close(ctx, again);
      expect(await owned(owner, a, e, f)).to.deep.equal([]);
    });

    it("refuses to take over an interface it does not own, leaving nothing behind", async () => {
      await new Batch(ip, a).addVeth({ name: "nsm-1", peerName: "other" }).commit();
      const err = await h.request(ctx, request("c1", a, "nsm-1")).then(
        () => undefined,
        (x: unknown) => x,
      );
      expect(err).to.be.instanceOf(StatusError);
      expect((err as StatusError).code).to.equal(Code.AlreadyExists);
      expect(await owned(owner, a, e, f)).to.deep.equal([]);
      expect((await getLink(ip, a, "nsm-1"))?.alias).to.equal(undefined);
    });

    it("after a restart: leftovers of inactive connections are removed, an active one is adopted (same ifindex) by its next refresh", async () => {
      const c1 = await h.request(ctx, request("c1", a, "nsm-1"));
      await h.request(ctx, request("c2", a, "nsm-2"));
      // A new forwarder process: same owner, no state.
      const report = await adoptOrRemoveLeftovers(owner, ["c1"], { namespaces: [a.path, e.path, f.path] });
      expect(report.removed.map((r) => r.name)).to.deep.equal(["nsm-2"]);
      expect(report.adopted.map((x) => x.link.owner?.connectionId)).to.deep.equal(["c1", "c1"]);
      const ifindex = (await getLink(ip, a, "nsm-1"))?.ifindex;
      // The context changed while the forwarder was down: the adopted links get the new one.
      plan = { ...plan, src: ["169.254.10.7/32"] };
      const fwd2 = createKernelForwarder({ owner, forwarderNetnsUrl: f.path });
      const h2 = handler(chain(...forwarderPart(fwd2, "unix:///tmp/nse.sock"), ...ep)); // the endpoint kept running
      const refreshed = await h2.request(ctx, refreshOf(c1));
      expect((await listLinks(ip, a)).filter((l) => l.name !== "lo").map((l) => l.name)).to.deep.equal(["nsm-1"]);
      const la = await getLink(ip, a, "nsm-1");
      expect(la?.ifindex).to.equal(ifindex); // adopted, not re-created
      expect(la?.addresses.filter((x) => !x.startsWith("fe80"))).to.deep.equal(["169.254.10.7/32"]);
      expect(await listOwned(ip, e, ownerPrefix(owner))).to.have.length(1);
      expect(await ping(a, "169.254.10.2")).to.equal(true);
      await h2.close(ctx, refreshed);
      expect(await owned(owner, a, e, f)).to.deep.equal([]);
    });

    it("a Close reaching a restarted forwarder (no state) still removes the connection's links by alias", async () => {
      const conn = await h.request(ctx, request("c1", a, "nsm-1"));
      const fwd2 = createKernelForwarder({ owner, forwarderNetnsUrl: f.path });
      const h2 = handler(chain(...forwarderPart(fwd2, "unix:///tmp/nse.sock"), ...endpoint(e, () => plan)));
      await h2.close(ctx, conn);
      expect(await owned(owner, a, e, f)).to.deep.equal([]);
    });

    it("a connection its client stopped refreshing is closed by the timeout element, removing its interfaces", async () => {
      const clock = new MockClock();
      let closed!: () => void;
      const done = new Promise<void>((resolve) => {
        closed = resolve;
      });
      const closeSeen: NetworkServiceElement = {
        name: "close-seen",
        request: (c, r, next) => next.request(c, r),
        async close(c, conn, next) {
          try {
            await next.close(c, conn);
          } finally {
            closed();
          }
        },
      };
      const fwd = createKernelForwarder({ owner, forwarderNetnsUrl: f.path });
      const ht = handler(
        chain(
          updatepath.newServer("fwd"),
          begin.newServer(),
          metadata.newServer(),
          timeout.newServer(),
          closeSeen,
          mechanisms.newServer(fwd.mechanisms),
          mechanismtranslation.newClient(),
          clienturl.newClient("unix:///tmp/nse.sock"),
          ...fwd.clientMechanisms,
          ...ep,
        ),
      );
      const req = create(NetworkServiceRequestSchema, {
        connection: {
          id: "t1",
          networkService: "svc",
          path: { index: 0, pathSegments: [{ name: "nsc", id: "t1", token: "t", expires: timestampFromMs(clock.now() + 60_000) }] },
        },
        mechanismPreferences: [mechanisms.kernel.mechanism({ netnsUrl: a.path, ifName: "nsm-1" })],
      });
      await ht.request(CallContext.create({ clock }), req);
      expect(await ping(a, "169.254.10.2")).to.equal(true);
      await clock.advance(60_000);
      await done;
      expect(await owned(owner, a, e, f)).to.deep.equal([]);
      expect(clock.pending()).to.equal(0);
    });

    it("gives 50 concurrent connections their own working interface and removes them all", async () => {
      const n = 50;
      const h50 = handler(
        chain(
          ...forwarderPart(createKernelForwarder({ owner, forwarderNetnsUrl: f.path }), "unix:///tmp/nse.sock"),
          ...endpoint(e, (conn) => {
            const i = Number(conn.id.slice(1));
            return { src: [`169.254.${100 + i}.1/32`], dst: [`169.254.${100 + i}.2/32`] };
          }),
        ),
      );
      const conns = await Promise.all(Array.from({ length: n }, (_, i) => h50.request(ctx, request(`c${i}`, a, `nsm-${i}`))));
      const links = await listOwned(ip, a, ownerPrefix(owner));
      expect(links.map((l) => l.name).sort()).to.deep.equal(Array.from({ length: n }, (_, i) => `nsm-${i}`).sort());
      expect(await listOwned(ip, e, ownerPrefix(owner))).to.have.length(n);
      const pings = await Promise.all(Array.from({ length: n }, (_, i) => ping(a, `169.254.${100 + i}.2`)));
      expect(pings.filter((p) => !p)).to.have.length(0);
      await Promise.all(conns.map((c) => h50.close(ctx, c)));
      expect(await owned(owner, a, e, f)).to.deep.equal([]);
    });
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
        await new Batch(ip, f1)
          .addVeth({ name: "under", peerName: "under", peerNetns: f2 })
          .addAddress("under", `${u.t1}/${u.len}`)
          .setUp("under")
          .commit();
        await new Batch(ip, f2).addAddress("under", `${u.t2}/${u.len}`).setUp("under").commit();
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
