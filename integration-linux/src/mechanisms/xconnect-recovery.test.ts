import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { NetworkServiceRequestSchema } from "@nsm-ts/api/networkservice";
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
  createKernelForwarder,
  getLink,
  listLinks,
  listOwned,
  type Netns,
  ownerPrefix,
} from "@nsm-ts/sdk-linux";
import { expect } from "chai";
import { type KernelFixture, ping } from "../kernel/fixture.js";
import { type Addresses, endpoint, forwarderPart, ip, localMesh, owned, refreshOf, request, useKernelFixture } from "./xconnect.fixture.js";

describe("kernel mechanisms: forwarder cross-connects in real namespaces", function () {
  this.timeout(60000);
  let fx: KernelFixture;
  let owner: string;
  useKernelFixture((f, o) => {
    fx = f;
    owner = o;
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
      plan = { src: ["169.254.10.1/32", "fd00:10::1/128"], dst: ["169.254.10.2/32", "fd00:10::2/128"], srcRoutes: ["203.0.113.10/32"] };
      ({ a, e, f, ep, h } = await localMesh(fx, owner, () => plan));
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
});
