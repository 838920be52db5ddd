/**
 * Placement contracts of the standard chains: what the `additional` elements of a client and of an endpoint
 * find in the context and the request (begin's EventFactory, the next-hop URL, the per-connection store,
 * tokens signed or not yet), and that the option switches take elements out.
 */

import type { NetworkServiceRequest } from "@nsm-ts/api/networkservice";
import { MockClock } from "@nsm-ts/base/clock";
import { type CallContext, MetaKey } from "@nsm-ts/base/context";
import { createServer, type NsmServer } from "@nsm-ts/base/grpc";
import { devIdentity } from "@nsm-ts/base/identity";
import { createTokenGenerator } from "@nsm-ts/base/token";
import { newCheck } from "@nsm-ts/testing/elements";
import { expect } from "chai";
import * as begin from "../common/begin/index.js";
import * as clienturl from "../common/clienturl/index.js";
import { client, endpoint, type NsmClient } from "./index.js";

const seenKey = new MetaKey<number>("test.seen");

interface Seen {
  factory: boolean;
  url: string | undefined;
  ownToken: string;
  prevToken: string;
  stored: number | undefined;
  prefs: string[];
}

function recorder(into: Seen[]) {
  return newCheck({
    beforeRequest: (ctx: CallContext, req: NetworkServiceRequest) => {
      const path = req.connection?.path;
      const stored = ctx.metadata.server.get(seenKey) ?? ctx.metadata.client.get(seenKey);
      into.push({
        factory: begin.eventFactoryKey.get(ctx) !== undefined,
        url: clienturl.clientUrlOf(ctx)?.href,
        ownToken: path?.pathSegments[path.index]?.token ?? "",
        prevToken: path && path.index > 0 ? (path.pathSegments[path.index - 1]?.token ?? "") : "",
        stored,
        prefs: req.mechanismPreferences.map((m) => m.type),
      });
      ctx.metadata.server.set(seenKey, (stored ?? 0) + 1);
      ctx.metadata.client.set(seenKey, (stored ?? 0) + 1);
    },
  });
}

describe("standard chains: placement", () => {
  let clock: MockClock;
  let server: NsmServer;
  let nsc: NsmClient;
  let atClient: Seen[];
  let atEndpoint: Seen[];

  beforeEach(async () => {
    clock = new MockClock();
    atClient = [];
    atEndpoint = [];
    const [c, e] = await Promise.all([devIdentity("nsc"), devIdentity("nse")]);
    const ep = endpoint({
      name: "nse",
      tokenGenerator: createTokenGenerator(e, { maxTokenLifetimeMs: 600_000, clock }),
      insecure: true,
      clock,
      additional: [recorder(atEndpoint)],
    });
    server = createServer();
    ep.serve(server);
    const url = await server.listen("tcp://127.0.0.1:0");
    nsc = client({
      name: "nsc",
      connectTo: url,
      tokenGenerator: createTokenGenerator(c, { maxTokenLifetimeMs: 600_000, clock }),
      insecure: true,
      clock,
      heal: false,
      additional: [recorder(atClient)],
      mechanismPreferences: [{ cls: "LOCAL", type: "KERNEL" }],
    });
  });

  afterEach(async () => {
    await nsc.dispose();
    await server.close({ graceMs: 100 });
    expect(clock.pending()).to.equal(0);
  });

  it("client additional elements run after begin, metadata and clienturl, before updatetoken", async () => {
    const conn = await nsc.request({ connection: { networkService: "ns" } });
    await nsc.request({ connection: conn });
    expect(atClient).to.have.length(2);
    expect(atClient[0]?.factory).to.equal(true);
    expect(atClient[0]?.url).to.match(/^tcp:\/\/127\.0\.0\.1:\d+$/);
    expect(atClient[0]?.ownToken).to.equal(""); // updatetoken comes later
    expect(atClient[0]?.stored).to.equal(undefined);
    expect(atClient[1]?.stored).to.equal(1); // the same per-connection store on the second Request
    expect(atEndpoint[0]?.prefs).to.deep.equal(["KERNEL"]); // filled from the client's options
    await nsc.close(conn);
  });

  it("endpoint additional elements run after updatetoken and metadata, with the caller's token in place", async () => {
    const conn = await nsc.request({ connection: { networkService: "ns" } });
    await nsc.request({ connection: conn });
    expect(atEndpoint).to.have.length(2);
    expect(atEndpoint[0]?.factory).to.equal(true);
    expect(atEndpoint[0]?.ownToken).to.not.equal("");
    expect(atEndpoint[0]?.prevToken).to.not.equal("");
    expect(atEndpoint[1]?.stored).to.equal(1);
    await nsc.close(conn);
  });

  it("the request is copied: the caller's object is not changed", async () => {
    const req = { connection: { networkService: "ns", labels: { a: "b" } } };
    const conn = await nsc.request(req);
    expect(req.connection).to.deep.equal({ networkService: "ns", labels: { a: "b" } });
    expect(conn.id).to.be.a("string").and.not.equal("");
    await nsc.close(conn);
  });
});
