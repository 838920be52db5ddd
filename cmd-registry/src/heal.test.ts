/**
 * The SDK's registry client chain against a real cmd-registry process: with heal on, an endpoint registered with a
 * memory registry that is killed and restarted on the same port comes back without the caller doing anything.
 */

import { create } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import { NetworkServiceEndpointSchema } from "@nsm-ts/api/registry";
import { CallContext } from "@nsm-ts/base/context";
import { type Channel, dial } from "@nsm-ts/base/grpc";
import { ephemeralIdentity } from "@nsm-ts/base/identity";
import { createTokenGenerator } from "@nsm-ts/base/token";
import { createRegistryClient } from "@nsm-ts/sdk/registry";
import { expect } from "chai";
import {
  callMetadata,
  kill,
  loadServices,
  type PlainClient,
  plainClient,
  running,
  Stream,
  startRegistry,
  stopAll,
} from "./process.fixture.js";

describe("registry client chain against cmd-registry", function () {
  this.timeout(30_000);
  const services = loadServices();
  let ac: AbortController;
  let channel: Channel | undefined;
  const clients: PlainClient[] = [];
  const streams: Stream<unknown>[] = [];

  beforeEach(() => {
    ac = new AbortController();
  });
  afterEach(async () => {
    ac.abort();
    channel?.close();
    for (const s of streams.splice(0)) s.cancel();
    for (const c of clients.splice(0)) grpc.Client.prototype.close.call(c);
    await stopAll();
    expect(running()).to.equal(0);
  });

  it("heal registers again with a restarted memory registry", async () => {
    const reg = await startRegistry();
    channel = dial(reg.url);
    const tokenGenerator = createTokenGenerator(await ephemeralIdentity("spiffe://test.com/nse"), { maxTokenLifetimeMs: 600_000 });
    const client = createRegistryClient("nse", channel, { tokenGenerator, heal: true, signal: ac.signal });
    const ctx = CallContext.create({ signal: ac.signal });
    const res = await client.register(ctx, create(NetworkServiceEndpointSchema, { name: "healed", url: "tcp://198.51.100.3:5001" }));
    expect(res.pathIds[0]).to.equal("spiffe://test.com/nse");

    await kill(reg);
    const port = Number(reg.target.split(":")[1]);
    const reg2 = await startRegistry({}, port);
    const c = plainClient(services.nse, reg2.target);
    clients.push(c);
    const watch = new Stream<{ network_service_endpoint: { name: string }; deleted: boolean }>(
      c,
      "Find",
      { network_service_endpoint: { name: "healed" }, watch: true },
      callMetadata("spiffe://test.com/watcher", false),
    );
    streams.push(watch as Stream<unknown>);
    const ev = await watch.next();
    expect([ev.network_service_endpoint.name, ev.deleted]).to.deep.equal(["healed", false]);
  });
});
