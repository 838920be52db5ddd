import { create } from "@bufbuild/protobuf";
import { type Connection, ConnectionSchema, NetworkServiceRequestSchema } from "@nsm-ts/api/networkservice";
import { CallContext } from "@nsm-ts/base/context";
import { Code, isStatusError } from "@nsm-ts/base/status";
import { newErrorElement } from "@nsm-ts/testing/elements";
import { expect } from "chai";
import { chain, handler } from "../core/index.js";
import { createAddressPool, point2pointipam } from "./index.js";

const outcome = (p: Promise<unknown>): Promise<unknown> =>
  p.then(
    () => undefined,
    (e: unknown) => e,
  );
const request = (id: string, excluded: string[] = []) =>
  create(NetworkServiceRequestSchema, { connection: { id, context: { ipContext: { excludedPrefixes: excluded } } } });
const ip = (c: Connection) => {
  const x = c.context?.ipContext;
  return {
    src: x?.srcIpAddrs,
    dst: x?.dstIpAddrs,
    srcRoutes: x?.srcRoutes.map((r) => r.prefix),
    dstRoutes: x?.dstRoutes.map((r) => r.prefix),
  };
};

describe("point2pointipam", () => {
  it("hands out dst/src /32 pairs lowest first with routes to each other", async () => {
    const h = handler(point2pointipam.newServer(createAddressPool(["198.51.100.4/24"])));
    const c1 = await h.request(CallContext.create(), request("c1"));
    expect(ip(c1)).to.deep.equal({
      src: ["198.51.100.1/32"],
      dst: ["198.51.100.0/32"],
      srcRoutes: ["198.51.100.0/32"],
      dstRoutes: ["198.51.100.1/32"],
    });
    const c2 = await h.request(CallContext.create(), request("c2"));
    expect(ip(c2).dst).to.deep.equal(["198.51.100.2/32"]);
    expect(ip(c2).src).to.deep.equal(["198.51.100.3/32"]);
  });

  it("skips excluded prefixes", async () => {
    const h = handler(point2pointipam.newServer(createAddressPool(["198.51.100.0/24"])));
    const c = await h.request(
      CallContext.create(),
      request("c1", ["198.51.100.0/30", "198.51.100.4/32", "203.0.113.0/24", "198.51.100.2/31"]),
    );
    expect(ip(c).dst).to.deep.equal(["198.51.100.5/32"]);
    expect(ip(c).src).to.deep.equal(["198.51.100.6/32"]);
  });

  it("hands out a pair per family from a dual-stack pool", async () => {
    const h = handler(point2pointipam.newServer(createAddressPool(["fd00::/126", "169.254.0.0/30"])));
    const c = await h.request(CallContext.create(), request("c1"));
    expect(ip(c).dst).to.deep.equal(["fd00::/128", "169.254.0.0/32"]);
    expect(ip(c).src).to.deep.equal(["fd00::1/128", "169.254.0.1/32"]);
  });

  it("keeps the same pair across refreshes of one connection", async () => {
    const pool = createAddressPool(["198.51.100.0/24"]);
    const h = handler(point2pointipam.newServer(pool));
    const ctx = CallContext.create(); // same per-connection metadata, as the metadata element gives a refresh
    const first = await h.request(ctx, request("c1"));
    await h.request(CallContext.create(), request("other"));
    const refreshed = await h.request(ctx, create(NetworkServiceRequestSchema, { connection: first }));
    expect(ip(refreshed)).to.deep.equal(ip(first));
    expect(pool.size).to.equal(4);
  });

  it("moves a connection whose pair became excluded to a new pair on refresh", async () => {
    const pool = createAddressPool(["198.51.100.0/24"]);
    const h = handler(point2pointipam.newServer(pool));
    const ctx = CallContext.create();
    const first = await h.request(ctx, request("c1"));
    first.context?.ipContext?.excludedPrefixes.push("198.51.100.0/31");
    const moved = await h.request(ctx, create(NetworkServiceRequestSchema, { connection: first }));
    expect(ip(moved)).to.deep.equal({
      src: ["198.51.100.3/32"],
      dst: ["198.51.100.2/32"],
      srcRoutes: ["198.51.100.2/32"],
      dstRoutes: ["198.51.100.3/32"],
    });
    expect(pool.size).to.equal(2);
  });

  it("releases the pair on Close and when the first Request fails", async () => {
    const pool = createAddressPool(["198.51.100.0/24"]);
    const ctx = CallContext.create();
    const h = handler(point2pointipam.newServer(pool));
    const c = await h.request(ctx, request("c1"));
    expect(pool.size).to.equal(2);
    await h.close(ctx, c);
    expect(pool.size).to.equal(0);

    const failing = handler(chain(point2pointipam.newServer(pool), newErrorElement()));
    expect(isStatusError(await outcome(failing.request(CallContext.create(), request("c2"))), Code.Unavailable)).to.equal(true);
    expect(pool.size).to.equal(0);
    const again = await h.request(CallContext.create(), request("c3"));
    expect(ip(again).dst).to.deep.equal(["198.51.100.0/32"]);
    await h.close(CallContext.create(), create(ConnectionSchema, { id: "unknown" }));
  });

  it("keeps the pair when a refresh fails", async () => {
    const pool = createAddressPool(["198.51.100.0/24"]);
    const ctx = CallContext.create();
    const h = handler(chain(point2pointipam.newServer(pool), newErrorElement({ requestFailOn: [1] })));
    const c = await h.request(ctx, request("c1"));
    expect(await outcome(h.request(ctx, create(NetworkServiceRequestSchema, { connection: c })))).to.be.instanceOf(Error);
    expect(pool.size).to.equal(2);
  });

  it("keeps a healing connection's addresses at an endpoint that restarted, as upstream recovers them", async () => {
    const before = handler(point2pointipam.newServer(createAddressPool(["198.51.100.0/24"])));
    await before.request(CallContext.create(), request("other"));
    const held = await before.request(CallContext.create(), request("c1"));
    // The endpoint restarts: a new instance with the same pool, no lease; c1 heals to it first.
    const pool = createAddressPool(["198.51.100.0/24"]);
    const after = handler(point2pointipam.newServer(pool));
    const ctx = CallContext.create();
    const healed = await after.request(ctx, create(NetworkServiceRequestSchema, { connection: held }));
    expect(ip(healed)).to.deep.equal({
      src: ["198.51.100.3/32"],
      dst: ["198.51.100.2/32"],
      srcRoutes: ["198.51.100.2/32"],
      dstRoutes: ["198.51.100.3/32"],
    });
    expect(pool.size).to.equal(2);
    // Taken: a new connection gets the lowest free pair around them, and the lease goes back on Close.
    expect(ip(await after.request(CallContext.create(), request("new"))).dst).to.deep.equal(["198.51.100.0/32"]);
    const third = await after.request(CallContext.create(), request("third"));
    expect([ip(third).dst, ip(third).src]).to.deep.equal([["198.51.100.4/32"], ["198.51.100.5/32"]]);
    await after.close(ctx, healed);
    expect(pool.size).to.equal(4);
  });

  it("replaces the pool's addresses a healing connection carries when they are taken or excluded, keeping others", async () => {
    const pool = createAddressPool(["198.51.100.0/24", "fd00::/120"]);
    const h = handler(point2pointipam.newServer(pool));
    const first = await h.request(CallContext.create(), request("first")); // takes .0/.1 and fd00::/fd00::1
    const stale = create(NetworkServiceRequestSchema, {
      connection: {
        id: "c1",
        context: {
          ipContext: {
            // An earlier endpoint instance's pair: the IPv4 side now first's, so nothing is recovered.
            srcIpAddrs: ["198.51.100.1/32", "fd00::9/128", "203.0.113.7/32"],
            dstIpAddrs: ["198.51.100.8/32", "fd00::8/128"],
            srcRoutes: [{ prefix: "198.51.100.8/32" }, { prefix: "fd00::8/128" }, { prefix: "203.0.113.0/24" }],
            dstRoutes: [{ prefix: "198.51.100.1/32" }, { prefix: "fd00::9/128" }],
          },
        },
      },
    });
    const c = await h.request(CallContext.create(), stale);
    expect(ip(c)).to.deep.equal({
      src: ["203.0.113.7/32", "198.51.100.3/32", "fd00::3/128"],
      dst: ["198.51.100.2/32", "fd00::2/128"],
      srcRoutes: ["203.0.113.0/24", "198.51.100.2/32", "fd00::2/128"],
      dstRoutes: ["198.51.100.3/32", "fd00::3/128"],
    });
    expect(pool.size).to.equal(8);
    expect(ip(first).dst).to.deep.equal(["198.51.100.0/32", "fd00::/128"]);
    // Free but excluded addresses are not recovered either.
    const v4 = handler(point2pointipam.newServer(createAddressPool(["198.51.100.0/24"])));
    const excluded = create(NetworkServiceRequestSchema, {
      connection: {
        id: "c2",
        context: {
          ipContext: { srcIpAddrs: ["198.51.100.21/32"], dstIpAddrs: ["198.51.100.20/32"], excludedPrefixes: ["198.51.100.20/30"] },
        },
      },
    });
    const moved = await v4.request(CallContext.create(), excluded);
    expect([ip(moved).dst, ip(moved).src]).to.deep.equal([["198.51.100.0/32"], ["198.51.100.1/32"]]);
  });

  it("fails with ResourceExhausted when the pool is empty", async () => {
    const h = handler(point2pointipam.newServer(createAddressPool(["198.51.100.0/31", "198.51.100.8/32"])));
    await h.request(CallContext.create(), request("c1"));
    const err = await outcome(h.request(CallContext.create(), request("c2")));
    expect(isStatusError(err, Code.ResourceExhausted), String(err)).to.equal(true);
    expect((err as Error).message).to.include("no free IPv4 address pair left in 198.51.100.0/31, 198.51.100.8/32");
    const bad = await outcome(h.request(CallContext.create(), request("c3", ["not-a-prefix"])));
    expect(isStatusError(bad, Code.InvalidArgument)).to.equal(true);
  });
});
