import { once } from "node:events";
import { createServer as createHttpServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { create } from "@bufbuild/protobuf";
import { ClusterService, DeliveryState, IntentService, StatusRequestSchema, TrafficGroupService } from "@nsm-ts/api/intents";
import { type Channel, createClient, createServer, dial, type NsmServer } from "@nsm-ts/base/grpc";
import { Code, StatusError } from "@nsm-ts/base/status";
import { expect } from "chai";
import { clusterA, clusterB, inboundA, memoryObjects, outboundB } from "./intents.fixture.js";
import type { IntentObjects } from "./objects.js";
import { createConnectHandler, registerIntentServices } from "./serve.js";

describe("traffic-controller: serving gRPC and Connect JSON from the same handlers", () => {
  let o: IntentObjects;
  let server: NsmServer;
  let channel: Channel;
  let http: Server;
  let base: string;

  beforeEach(async () => {
    o = memoryObjects();
    server = createServer();
    registerIntentServices(server, o);
    const url = await server.listen("tcp://127.0.0.1:0");
    channel = dial(url);
    http = createHttpServer(createConnectHandler(o));
    http.listen(0, "127.0.0.1");
    await once(http, "listening");
    base = `http://127.0.0.1:${(http.address() as AddressInfo).port}`;
  });
  afterEach(async () => {
    channel.close();
    await server.close();
    http.closeAllConnections();
    await new Promise((r) => http.close(r));
    await o.store.kv.close();
  });

  const post = (path: string, body: unknown) =>
    fetch(`${base}/${path}`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });

  it("a curl-style JSON POST creates an intent that gRPC then reads, and errors keep their code", async () => {
    const clusters = createClient(ClusterService, channel);
    await clusters.createCluster(clusterA());
    await clusters.createCluster(clusterB());
    let res = await post("nsmts.intents.v1.TrafficGroupService/CreateTrafficGroup", { name: "shop" });
    expect(res.status).to.equal(200);
    res = await post("nsmts.intents.v1.IntentService/CreateIntent", {
      trafficGroup: "shop",
      name: "expose-a",
      inbound: { service: "a", cluster: "edge-a", ports: [{ number: 8080, protocol: "HTTP" }], allowedClients: [{ app: "b" }] },
    });
    expect(res.status).to.equal(200);
    const created = (await res.json()) as { name: string; revision: string };
    expect(created.name).to.equal("expose-a");
    expect(created.revision).to.match(/^[1-9][0-9]*$/);
    const intents = createClient(IntentService, channel);
    const got = await intents.getIntent({ trafficGroup: "shop", name: "expose-a" });
    expect(got.spec.case).to.equal("inbound");
    expect(got.revision).to.equal(created.revision);
    // An invalid duration: Connect answers HTTP 400 with the code and the field.
    res = await post("nsmts.intents.v1.IntentService/CreateIntent", {
      trafficGroup: "shop",
      name: "b-calls-a",
      outbound: { clientApp: "b", cluster: "edge-b", service: "a", timeout: "soon" },
    });
    expect(res.status).to.equal(400);
    const err = (await res.json()) as { code: string; message: string };
    expect(err.code).to.equal("invalid_argument");
    expect(err.message).to.contain("outbound.timeout");
    // The same refusal over gRPC.
    try {
      await intents.createIntent({ ...outboundB("soon") });
      expect.fail("expected InvalidArgument");
    } catch (e) {
      expect(e).to.be.instanceOf(StatusError);
      expect((e as StatusError).code).to.equal(Code.InvalidArgument);
    }
    res = await post("nsmts.intents.v1.IntentService/GetIntent", { trafficGroup: "shop", name: "nope" });
    expect(res.status).to.equal(404);
    res = await post("nsmts.intents.v1.IntentService/ListIntentStatus", {});
    const list = (await res.json()) as { items: Array<{ intent: string; state: string }> };
    expect(list.items).to.deep.equal([
      {
        trafficGroup: "shop",
        intent: "expose-a",
        cluster: "edge-a",
        target: "git",
        state: "DELIVERY_STATE_PENDING",
        intentRevision: created.revision,
        sequence: "1",
      },
    ]);
  });

  it("watches over gRPC: existing objects, then each change; status changes too", async () => {
    const groups = createClient(TrafficGroupService, channel);
    const intents = createClient(IntentService, channel);
    await createClient(ClusterService, channel).createCluster(clusterA());
    await groups.createTrafficGroup({ name: "shop" });
    await intents.createIntent(inboundA());
    const ac = new AbortController();
    const seen: string[] = [];
    const statuses: DeliveryState[] = [];
    const statusWatch = (async () => {
      for await (const ev of intents.watchIntentStatus(create(StatusRequestSchema, { cluster: "edge-a" }), { signal: ac.signal })) {
        statuses.push(ev.status?.state ?? DeliveryState.UNSPECIFIED);
        return;
      }
    })();
    // The existing intent arrives first; the delete made after it is seen is the next event.
    for await (const ev of intents.watchIntents({}, { signal: ac.signal })) {
      seen.push(`${ev.deleted ? "-" : "+"}${ev.intent?.name}`);
      if (seen.length === 1) await intents.deleteIntent({ trafficGroup: "shop", name: "expose-a" });
      if (seen.length === 2) break;
    }
    await statusWatch;
    ac.abort();
    expect(seen).to.deep.equal(["+expose-a", "-expose-a"]);
    expect(statuses).to.deep.equal([DeliveryState.PENDING]);
  });
});
