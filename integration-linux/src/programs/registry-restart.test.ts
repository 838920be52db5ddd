/**
 * A memory registry that is killed and restarted empty gets everything back from the programs that registered
 * with it: the forwarder, the endpoint and the endpoint's network service (which a client needs to find the
 * endpoint), so new connections work again without restarting anything else.
 */
import { create } from "@bufbuild/protobuf";
import { type NetworkService, NetworkServiceSchema } from "@nsm-ts/api/registry";
import { CallContext } from "@nsm-ts/base/context";
import { type Channel, dial } from "@nsm-ts/base/grpc";
import { devIdentity } from "@nsm-ts/base/identity";
import { createTokenGenerator } from "@nsm-ts/base/token";
import { client, mechanisms, type NsmClient } from "@nsm-ts/sdk/networkservice";
import { createRegistryClient } from "@nsm-ts/sdk/registry";
import { expect } from "chai";
import { type ProgramSet, startEndpoint, startNode, startRegistry, useProgramSet } from "./harness.js";

/** Resolves with the first registration of network service `name` that `channel`'s registry reports. */
async function serviceArrives(channel: Channel, name: string, signal: AbortSignal): Promise<NetworkService> {
  const tokenGenerator = createTokenGenerator(await devIdentity("watcher"), { maxTokenLifetimeMs: 60_000 });
  const reg = createRegistryClient("ns", channel, { tokenGenerator });
  const ctx = CallContext.create({ signal });
  for await (const ev of reg.find(ctx, { template: create(NetworkServiceSchema, { name }), watch: true })) {
    if (!ev.deleted) return ev.entry;
  }
  throw new Error(`watch for ${name} ended`);
}

describe("programs: a restarted registry gets its registrations back", function () {
  this.timeout(60_000);
  let set: ProgramSet;
  let channel: Channel | undefined;
  let nsc: NsmClient | undefined;
  const ac = new AbortController();
  afterEach(async () => {
    await nsc?.dispose().catch(() => undefined);
    nsc = undefined;
    ac.abort();
    channel?.close();
  });
  useProgramSet((s) => {
    set = s;
  });

  it("the endpoint registers its network service again, and a new connection works", async () => {
    const { registry, url } = await startRegistry(set);
    const node = await startNode(set, 1, url);
    await startEndpoint(set, "nse-1", node.socket, "svc-restart");

    await registry.stop("SIGKILL");
    await startRegistry(set, { NSM_LISTEN_ON: url });
    channel = dial(url);
    const ns = await serviceArrives(channel, "svc-restart", ac.signal);
    expect(ns.name).to.equal("svc-restart");

    const tokenGenerator = createTokenGenerator(await devIdentity("nsc-1"), { maxTokenLifetimeMs: 60_000 });
    nsc = client({ name: "nsc-1", connectTo: node.socket, tokenGenerator, insecure: true, refresh: false, heal: false });
    const conn = await nsc.request(
      { connection: { networkService: "svc-restart" }, mechanismPreferences: [mechanisms.noop.mechanism()] },
      { timeoutMs: 20_000 },
    );
    expect(conn.networkServiceEndpointName).to.equal("nse-1");
  });
});
