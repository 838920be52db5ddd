/**
 * End to end on our own mesh (the in-process sandbox: registry, nsmgr, forwarder over real gRPC): the intent
 * "client nsc-x may use service a" is delivered to the cluster's registry by the registry target, and the
 * endpoint of `a` enforcing the compiled authorization input admits nsc-x and refuses nsc-y (PermissionDenied at
 * the endpoint, reported through the nsmgr's endpoint selection).
 */
import { create } from "@bufbuild/protobuf";
import { ClusterSchema, DeliveryState, IntentSchema, TrafficGroupSchema } from "@nsm-ts/api/intents";
import { NetworkServiceSchema } from "@nsm-ts/api/registry";
import { MockClock } from "@nsm-ts/base/clock";
import { CallContext } from "@nsm-ts/base/context";
import { dial } from "@nsm-ts/base/grpc";
import { DEV_TRUST_DOMAIN } from "@nsm-ts/base/identity";
import { silentLogger } from "@nsm-ts/base/log";
import { enforce } from "@nsm-ts/base/policy";
import { Code, fail, StatusError } from "@nsm-ts/base/status";
import type { NetworkServiceElement } from "@nsm-ts/sdk/networkservice";
import { createRegistryClient } from "@nsm-ts/sdk/registry";
import { createSandbox } from "@nsm-ts/testing/sandbox";
import { expect } from "chai";
import { allowedClientsPolicy, compileNsm } from "./compile/index.js";
import { createRegistryTarget } from "./delivery/registry.js";
import { runDelivery } from "./delivery/supervisor.js";
import { waitForStatus } from "./delivery.fixture.js";
import { memoryObjects } from "./intents.fixture.js";

describe("traffic-controller e2e: an intent on our mesh", function () {
  this.timeout(60_000);

  it("registers the network service in the cluster's registry; a client the intent does not allow gets PermissionDenied", async () => {
    const sb = await createSandbox({ nodes: 1 });
    const o = memoryObjects();
    const ac = new AbortController();
    const clock = new MockClock();
    let delivering: Promise<void> = Promise.resolve();
    try {
      await o.createCluster(create(ClusterSchema, { name: "edge-a", target: { registryUrl: sb.registry.url } }));
      await o.createGroup(create(TrafficGroupSchema, { name: "shop" }));
      await o.createIntent(
        create(IntentSchema, {
          trafficGroup: "shop",
          name: "x-may-use-a",
          spec: {
            case: "inbound",
            value: {
              service: "a",
              cluster: "edge-a",
              ports: [{ number: 8080 }],
              allowedClients: [{ spiffeId: `spiffe://${DEV_TRUST_DOMAIN}/nsc-x` }],
            },
          },
        }),
      );
      // A network service belongs to its first registrant; the sandbox's endpoints (re)register theirs as the
      // operator identity "sandbox", so the controller registers as that operator too.
      delivering = runDelivery(
        o.store.kv,
        (c) => createRegistryTarget({ url: c.target?.registryUrl ?? "", tokenGenerator: sb.tokenGenerator("sandbox") }),
        { clock, log: silentLogger },
        ac.signal,
      );
      await waitForStatus(o, (all) => all.length === 1 && all[0]?.state === DeliveryState.APPLIED);

      // The registry has the service.
      const channel = dial(sb.registry.url);
      const found: string[] = [];
      try {
        const reg = createRegistryClient("ns", channel, { tokenGenerator: sb.tokenGenerator("checker") });
        const ctx = CallContext.create({ deadline: Date.now() + 5_000 });
        for await (const r of reg.find(ctx, { template: create(NetworkServiceSchema, { name: "a" }), watch: false }))
          found.push(`${r.entry.name}/${r.entry.payload}`);
      } finally {
        channel.close();
      }
      expect(found).to.deep.equal(["a/IP"]);

      // The endpoint of `a` enforces the compiled authorization input.
      const r = await o.store.read();
      const auth = compileNsm("edge-a", r.snap)[0]?.authorization ?? fail(Code.Internal, "no authorization input");
      const policy = allowedClientsPolicy(auth);
      const guard: NetworkServiceElement = {
        name: "allowed-clients",
        async request(ctx, req, next) {
          const path = req.connection?.path ?? fail(Code.InvalidArgument, "no path");
          await enforce([policy], { path, now: ctx.clock.now(), insecure: true }, "allowed-clients");
          return next.request(ctx, req);
        },
        close: (ctx, conn, next) => next.close(ctx, conn),
      };
      await sb.addEndpoint(0, { name: "nse-a", services: ["a"], payload: "IP", additional: [guard] });

      const x = sb.addClient(0, { name: "nsc-x" });
      const conn = await x.request({ connection: { networkService: "a" } });
      expect(conn.networkServiceEndpointName).to.equal("nse-a");
      await x.close(conn);

      const y = sb.addClient(0, { name: "nsc-y" });
      const err = await y.request({ connection: { networkService: "a" } }).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).to.be.instanceOf(StatusError);
      // The endpoint refuses with PermissionDenied; the nsmgr's endpoint selection reports "all candidates
      // failed" as Unavailable with each candidate's reason, so the client sees the denial in the message.
      expect((err as StatusError).message).to.contain(
        "allowed-clients: policy allowed_clients denied: spiffe://nsm-ts.dev/nsc-y is not among the allowed clients",
      );
    } finally {
      ac.abort();
      await delivering;
      await o.store.kv.close();
      await sb.close();
    }
  });
});
