import { clone, create, type MessageInitShape } from "@bufbuild/protobuf";
import { type Connection, ConnectionSchema, NetworkServiceRequestSchema } from "@nsm-ts/api/networkservice";
import { CallContext } from "@nsm-ts/base/context";
import { Code, isStatusError } from "@nsm-ts/base/status";
import { newErrorElement } from "@nsm-ts/testing/elements";
import { expect } from "chai";
import * as begin from "../../common/begin/index.js";
import * as metadata from "../../common/metadata/index.js";
import { chain, handler } from "../../core/index.js";
import { vl3 } from "../index.js";

const request = (id: string, conn: MessageInitShape<typeof ConnectionSchema> = {}) =>
  create(NetworkServiceRequestSchema, { connection: { ...create(ConnectionSchema, conn), id } });
const again = (c: Connection) => create(NetworkServiceRequestSchema, { connection: clone(ConnectionSchema, c) });
const routes = (rs: Array<{ prefix: string; nextHop: string }> | undefined) =>
  rs?.map((r) => (r.nextHop ? `${r.prefix} via ${r.nextHop}` : r.prefix));
const failure = (p: Promise<unknown>): Promise<unknown> =>
  p.then(
    () => undefined,
    (e: unknown) => e,
  );

describe("ipam/vl3: server", () => {
  const server = (ipam: vl3.Vl3Ipam, opts: vl3.Vl3ServerOptions = {}) => handler(chain(metadata.newServer(), vl3.newServer(ipam, opts)));

  it("hands each client an address of the prefix, the endpoint's address and routes to the whole vL3 range", async () => {
    const h = server(vl3.createVl3Ipam("169.254.1.0/24"), { globalPrefix: "169.254.0.0/16" });
    const c = await h.request(CallContext.create(), request("c1"));
    const ip = c.context?.ipContext;
    expect(ip?.srcIpAddrs).to.deep.equal(["169.254.1.1/32"]);
    expect(ip?.dstIpAddrs).to.deep.equal(["169.254.1.0/32"]);
    expect(routes(ip?.srcRoutes)).to.deep.equal(["169.254.1.0/32", "169.254.1.0/24 via 169.254.1.0", "169.254.0.0/16 via 169.254.1.0"]);
    expect(routes(ip?.dstRoutes)).to.deep.equal(["169.254.1.1/32"]);
  });

  it("keeps the address across refreshes, frees it on Close, and derives the range as upstream (/16) by default", async () => {
    const ipam = vl3.createVl3Ipam("169.254.7.0/24");
    const h = server(ipam);
    const c1 = await h.request(CallContext.create(), request("c1"));
    const c1b = await h.request(CallContext.create(), again(c1));
    expect(c1b.context?.ipContext?.srcIpAddrs).to.deep.equal(["169.254.7.1/32"]);
    expect(routes(c1b.context?.ipContext?.srcRoutes)).to.include("169.254.0.0/16 via 169.254.7.0");
    expect(ipam.size).to.equal(1);
    await h.close(CallContext.create(), c1b);
    expect(ipam.size).to.equal(0);
    const c2 = await h.request(CallContext.create(), request("c2"));
    expect(c2.context?.ipContext?.srcIpAddrs).to.deep.equal(["169.254.7.1/32"]);
  });

  it("after a prefix reset a refresh replaces the stale address and every route of the old prefix", async () => {
    const ipam = vl3.createVl3Ipam("169.254.1.0/24");
    const h = server(ipam, { globalPrefix: "169.254.0.0/16" });
    const c1 = await h.request(CallContext.create(), request("c1"));
    ipam.reset("169.254.2.0/24");
    const c1b = await h.request(CallContext.create(), again(c1));
    const ip = c1b.context?.ipContext;
    expect(ip?.srcIpAddrs).to.deep.equal(["169.254.2.1/32"]);
    expect(ip?.dstIpAddrs).to.deep.equal(["169.254.2.0/32"]);
    expect(routes(ip?.srcRoutes)).to.have.members(["169.254.2.0/32", "169.254.2.0/24 via 169.254.2.0", "169.254.0.0/16 via 169.254.2.0"]);
    expect(routes(ip?.dstRoutes)).to.deep.equal(["169.254.2.1/32"]);
  });

  it("gives a healing client its old address back when it is in the prefix and free", async () => {
    const h = server(vl3.createVl3Ipam("169.254.1.0/24"));
    const c = await h.request(CallContext.create(), request("c9", { context: { ipContext: { srcIpAddrs: ["169.254.1.42/32"] } } }));
    expect(c.context?.ipContext?.srcIpAddrs).to.deep.equal(["169.254.1.42/32"]);
  });

  it("a client healing from another vL3 endpoint keeps nothing of it: one address, routes through this endpoint only", async () => {
    const h = server(vl3.createVl3Ipam("169.254.1.0/24"), { globalPrefix: "169.254.0.0/16" });
    const healing = request("c7", {
      context: {
        ipContext: {
          srcIpAddrs: ["169.254.9.5/32", "fd00::5/128"],
          dstIpAddrs: ["169.254.9.0/32"],
          srcRoutes: [{ prefix: "169.254.9.0/32" }, { prefix: "169.254.0.0/16", nextHop: "169.254.9.0" }],
          dstRoutes: [{ prefix: "169.254.9.5/32" }],
        },
      },
    });
    const ip = (await h.request(CallContext.create(), healing)).context?.ipContext;
    expect(ip?.srcIpAddrs).to.deep.equal(["fd00::5/128", "169.254.1.1/32"]);
    expect(ip?.dstIpAddrs).to.deep.equal(["169.254.1.0/32"]);
    expect(routes(ip?.srcRoutes)).to.deep.equal(["169.254.1.0/32", "169.254.1.0/24 via 169.254.1.0", "169.254.0.0/16 via 169.254.1.0"]);
    expect(routes(ip?.dstRoutes)).to.deep.equal(["169.254.1.1/32"]);
  });

  it("a peer endpoint (own address, route to its prefix through it) gets routes, no address and no range route", async () => {
    const ipam = vl3.createVl3Ipam("169.254.1.0/24");
    const h = server(ipam, { globalPrefix: "169.254.0.0/16" });
    const peer = request("p1", {
      context: {
        ipContext: {
          srcIpAddrs: ["169.254.2.0/32"],
          dstRoutes: [{ prefix: "169.254.2.0/32" }, { prefix: "169.254.2.0/24", nextHop: "169.254.2.0" }],
        },
      },
    });
    const c = await h.request(CallContext.create(), peer);
    const ip = c.context?.ipContext;
    expect(ip?.srcIpAddrs).to.deep.equal(["169.254.2.0/32"]);
    expect(routes(ip?.srcRoutes)).to.deep.equal(["169.254.1.0/32", "169.254.1.0/24 via 169.254.1.0"]);
    expect(routes(ip?.dstRoutes)).to.have.members(["169.254.2.0/32", "169.254.2.0/24 via 169.254.2.0"]);
    expect(ipam.size).to.equal(0);
  });

  it("answers Unavailable before the first prefix, ResourceExhausted naming the prefix when it is full, and frees on a failed first Request", async () => {
    const empty = vl3.createVl3Ipam();
    const e1 = await failure(server(empty).request(CallContext.create(), request("c1")));
    expect(isStatusError(e1) && e1.code).to.equal(Code.Unavailable);

    const ipam = vl3.createVl3Ipam("169.254.1.0/30"); // .0 the endpoint, .1–.3 clients
    const h = server(ipam);
    for (const id of ["a", "b", "c"]) await h.request(CallContext.create(), request(id));
    const e2 = await failure(h.request(CallContext.create(), request("d")));
    expect(isStatusError(e2) && e2.code).to.equal(Code.ResourceExhausted);
    expect((e2 as Error).message).to.include("169.254.1.0/30");

    const small = vl3.createVl3Ipam("169.254.3.0/24");
    const failing = handler(chain(metadata.newServer(), vl3.newServer(small), newErrorElement()));
    await failure(failing.request(CallContext.create(), request("x")));
    expect(small.size).to.equal(0);
  });
});

describe("ipam/vl3: client", () => {
  it("brings the endpoint's address and a route to its prefix; re-requests with the new ones after a prefix reset", async () => {
    const ipam = vl3.createVl3Ipam("169.254.2.0/24");
    const seen: Connection[] = [];
    const h = handler(
      chain(begin.newClient(), metadata.newClient(), vl3.newClient(ipam), {
        name: "record",
        async request(_ctx, req) {
          seen.push(clone(ConnectionSchema, req.connection ?? create(ConnectionSchema)));
          return clone(ConnectionSchema, req.connection ?? create(ConnectionSchema));
        },
        close: async () => undefined,
      }),
    );
    const c = await h.request(CallContext.create(), request("p1"));
    expect(c.context?.ipContext?.srcIpAddrs).to.deep.equal(["169.254.2.0/32"]);
    expect(routes(c.context?.ipContext?.dstRoutes)).to.deep.equal(["169.254.2.0/32", "169.254.2.0/24 via 169.254.2.0"]);

    const refreshed = new Promise<void>((resolve) => {
      const stop = ipam.subscribe(() => {
        stop();
        // begin runs the event after this tick; wait until the recorder has seen it.
        const poll = (): void => void (seen.length === 2 ? resolve() : setImmediate(poll));
        poll();
      });
    });
    ipam.reset("169.254.5.0/24");
    await refreshed;
    const ip = seen[1]?.context?.ipContext;
    expect(ip?.srcIpAddrs).to.deep.equal(["169.254.5.0/32"]);
    expect(routes(ip?.dstRoutes)).to.deep.equal(["169.254.5.0/32", "169.254.5.0/24 via 169.254.5.0"]);
    await h.close(CallContext.create(), c);
    ipam.reset("169.254.6.0/24"); // closed: no re-request any more
    await new Promise((r) => setImmediate(r));
    expect(seen).to.have.length(2);
  });
});

describe("ipam/vl3: members", () => {
  it("reports a member with its name, labels and vL3 address on Request and refresh, and its leave on Close; peers are flagged", async () => {
    const events: string[] = [];
    const listener: vl3.Vl3MemberListener = {
      join: (m) => void events.push(`join ${m.name} ${m.addresses.join(",")} ${m.labels.podName ?? ""}${m.peer ? " peer" : ""}`),
      leave: (m) => void events.push(`leave ${m.name}`),
    };
    const ipam = vl3.createVl3Ipam("169.254.1.0/24");
    const h = handler(chain(metadata.newServer(), vl3.newServer(ipam), vl3.newMemberServer(listener)));
    const path = (name: string) => ({ index: 0, pathSegments: [{ name, id: `${name}-id` }] });
    const c = await h.request(CallContext.create(), request("c1", { path: path("nsc-a"), labels: { podName: "pod-a" } }));
    await h.request(CallContext.create(), again(c));
    const peer = await h.request(
      CallContext.create(),
      request("p1", {
        path: path("vl3-b"),
        context: { ipContext: { srcIpAddrs: ["169.254.2.0/32"], dstRoutes: [{ prefix: "169.254.2.0/24", nextHop: "169.254.2.0" }] } },
      }),
    );
    await h.close(CallContext.create(), c);
    await h.close(CallContext.create(), peer);
    expect(events).to.deep.equal([
      "join nsc-a 169.254.1.1 pod-a",
      "join nsc-a 169.254.1.1 pod-a",
      "join vl3-b 169.254.2.0  peer",
      "leave nsc-a",
      "leave vl3-b",
    ]);
  });
});
