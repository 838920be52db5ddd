import { CallContext } from "@nsm-ts/base/context";
import { Code, type StatusError } from "@nsm-ts/base/status";
import { chain, handler, mechanisms, metadata, type NetworkServiceHandler } from "@nsm-ts/sdk/networkservice";
import {
  checkKernelCapable,
  createKernelForwarder,
  getLink,
  kernel,
  listOwned,
  listRoutes,
  type Netns,
  ownerPrefix,
} from "@nsm-ts/sdk-linux";
import { expect } from "chai";
import { type KernelFixture, ping } from "../kernel/fixture.js";
import { type Addresses, forwarderPart, ip, ipam, localMesh, owned, refreshOf, request, useKernelFixture } from "./xconnect.fixture.js";

describe("kernel mechanisms: forwarder cross-connects in real namespaces", function () {
  this.timeout(60000);
  let fx: KernelFixture;
  let owner: string;
  useKernelFixture((f, o) => {
    fx = f;
    owner = o;
  });

  it("passes the privilege check as root", async () => {
    await checkKernelCapable();
  });

  describe("local KERNEL ↔ KERNEL", () => {
    let a: Netns;
    let e: Netns;
    let f: Netns;
    let h: NetworkServiceHandler;
    let plan: Addresses;
    const ctx = CallContext.create();

    beforeEach(async () => {
      plan = { src: ["169.254.10.1/32", "fd00:10::1/128"], dst: ["169.254.10.2/32", "fd00:10::2/128"], srcRoutes: ["203.0.113.10/32"] };
      ({ a, e, f, h } = await localMesh(fx, owner, () => plan));
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
  });
});
