import { create } from "@bufbuild/protobuf";
import { ClusterSchema, IntentSchema, ObjectRefSchema, TrafficGroupSchema } from "@nsm-ts/api/intents";
import { Code, StatusError } from "@nsm-ts/base/status";
import { expect } from "chai";
import { clusterA, clusterB, inboundA, memoryObjects, outboundB, seedShop } from "./intents.fixture.js";
import type { IntentObjects } from "./objects.js";

async function statusOf(p: Promise<unknown>): Promise<StatusError> {
  try {
    await p;
  } catch (err) {
    if (err instanceof StatusError) return err;
    throw err;
  }
  return expect.fail("expected a StatusError");
}

describe("traffic-controller: objects and validation", () => {
  let o: IntentObjects;
  beforeEach(() => {
    o = memoryObjects();
  });
  afterEach(() => o.store.kv.close());

  it("create, get, list, update with compare-and-set, delete", async () => {
    await seedShop(o);
    const got = await o.get("intent", create(ObjectRefSchema, { trafficGroup: "shop", name: "b-calls-a" }));
    expect(got.spec.case).to.equal("outbound");
    expect(got.revision).to.not.equal("0");
    expect((await o.list("intent", "shop")).map((i) => i.name)).to.deep.equal(["b-calls-a", "expose-a"]);
    const upd = outboundB("3s");
    upd.revision = got.revision;
    const after = await o.updateIntent(upd);
    expect(BigInt(after.revision) > BigInt(got.revision)).to.equal(true);
    const stale = outboundB("4s");
    stale.revision = got.revision;
    const e = await statusOf(o.updateIntent(stale));
    expect(e.code).to.equal(Code.Aborted);
    expect(e.message).to.contain("revision");
    await o.deleteIntent(create(ObjectRefSchema, { trafficGroup: "shop", name: "b-calls-a", revision: after.revision }));
    expect((await statusOf(o.get("intent", create(ObjectRefSchema, { trafficGroup: "shop", name: "b-calls-a" })))).code).to.equal(
      Code.NotFound,
    );
  });

  it("unknown cluster, unknown service and invalid durations name the field; nothing is stored", async () => {
    await seedShop(o);
    const before = await o.store.kv.list("");
    const unknownCluster = inboundA();
    unknownCluster.name = "x";
    if (unknownCluster.spec.case === "inbound") unknownCluster.spec.value.cluster = "nowhere";
    let e = await statusOf(o.createIntent(unknownCluster));
    expect(e.code).to.equal(Code.FailedPrecondition);
    expect(e.message).to.contain("inbound.cluster: unknown cluster");
    const unknownService = outboundB();
    unknownService.name = "y";
    if (unknownService.spec.case === "outbound") unknownService.spec.value.service = "zzz";
    e = await statusOf(o.createIntent(unknownService));
    expect(e.code).to.equal(Code.FailedPrecondition);
    expect(e.message).to.contain("outbound.service: unknown service");
    const badDuration = outboundB("2 seconds");
    badDuration.name = "z";
    e = await statusOf(o.createIntent(badDuration));
    expect(e.code).to.equal(Code.InvalidArgument);
    expect(e.message).to.contain("outbound.timeout");
    const badRetry = outboundB();
    if (badRetry.spec.case === "outbound" && badRetry.spec.value.retries) badRetry.spec.value.retries.perTryTimeout = "-1s";
    e = await statusOf(o.updateIntent(badRetry));
    expect(e.message).to.contain("outbound.retries.per_try_timeout");
    const badPort = inboundA();
    if (badPort.spec.case === "inbound")
      badPort.spec.value.ports.push({ $typeName: "nsmts.intents.v1.ServicePort", number: 70000, protocol: "HTTP", name: "" });
    e = await statusOf(o.updateIntent(badPort));
    expect(e.code).to.equal(Code.InvalidArgument);
    expect(e.message).to.contain("inbound.ports[1].number");
    expect(await o.store.kv.list("")).to.deep.equal(before);
  });

  it("conflicting intents are refused with FailedPrecondition", async () => {
    await seedShop(o);
    const dup = inboundA();
    dup.name = "expose-a-again";
    let e = await statusOf(o.createIntent(dup));
    expect(e.code).to.equal(Code.FailedPrecondition);
    expect(e.message).to.contain("inbound.service: conflicts with intent shop/expose-a");
    const twice = outboundB();
    twice.name = "b-calls-a-again";
    e = await statusOf(o.createIntent(twice));
    expect(e.message).to.contain("outbound.service: conflicts with intent shop/b-calls-a");
    const narrowed = inboundA();
    if (narrowed.spec.case === "inbound") narrowed.spec.value.allowedClients = [];
    e = await statusOf(o.updateIntent(narrowed));
    expect(e.message).to.contain("inbound.allowed_clients: conflicts with intent shop/b-calls-a");
    const stranger = outboundB();
    stranger.name = "c-calls-a";
    if (stranger.spec.case === "outbound") stranger.spec.value.clientApp = "c";
    e = await statusOf(o.createIntent(stranger));
    expect(e.message).to.contain("outbound.client_app: conflicts with intent shop/expose-a");
    e = await statusOf(o.deleteCluster(create(ObjectRefSchema, { name: "edge-a" })));
    expect(e.code).to.equal(Code.FailedPrecondition);
    e = await statusOf(o.deleteGroup(create(ObjectRefSchema, { name: "shop" })));
    expect(e.code).to.equal(Code.FailedPrecondition);
    e = await statusOf(o.createCluster(clusterA()));
    expect(e.code).to.equal(Code.AlreadyExists);
  });

  it("malformed objects name the field", async () => {
    let e = await statusOf(o.createCluster(create(ClusterSchema, { name: "Bad_Name" })));
    expect(e.code).to.equal(Code.InvalidArgument);
    expect(e.message).to.contain("name:");
    e = await statusOf(o.createCluster(create(ClusterSchema, { name: "c", target: { registryUrl: "ftp://x" } })));
    expect(e.message).to.contain("target.registry_url");
    e = await statusOf(o.createGroup(create(TrafficGroupSchema, { name: "" })));
    expect(e.message).to.contain("name:");
    await o.createGroup(create(TrafficGroupSchema, { name: "g" }));
    e = await statusOf(o.createIntent(create(IntentSchema, { trafficGroup: "g", name: "empty" })));
    expect(e.message).to.contain("spec: an intent needs inbound or outbound");
  });

  it("a write enqueues one outbox entry per affected cluster target and marks its intents pending", async () => {
    await seedShop(o);
    const ob = await o.store.kv.list("ob/");
    expect(ob.entries.map((e) => e.key)).to.deep.equal(["ob/edge-a/git/00000000000000000001", "ob/edge-b/git/00000000000000000001"]);
    // Changing only the outbound intent's timeout touches only edge-b's VirtualService.
    await o.updateIntent(outboundB("5s"));
    const last = await o.store.kv.get("ob/edge-b/git/00000000000000000002");
    const entry = JSON.parse(last?.value ?? "{}");
    expect(Object.keys(entry.puts)).to.deep.equal(["default/virtualservice/b-to-a.yaml"]);
    expect(entry.deletes).to.deep.equal([]);
    expect(await o.store.kv.get("ob/edge-a/git/00000000000000000002")).to.equal(undefined);
    const status = JSON.parse((await o.store.kv.get("status/edge-b/git"))?.value ?? "{}");
    expect(status["shop/b-calls-a"].state).to.equal("pending");
    expect(status["shop/b-calls-a"].sequence).to.equal("2");
  });

  it("removing a cluster's target drops its desired state, statuses and undelivered entries", async () => {
    await seedShop(o);
    const c = clusterB();
    c.target = undefined;
    await o.updateCluster(c);
    expect((await o.store.kv.list("ob/edge-b/")).entries).to.deep.equal([]);
    expect(await o.store.kv.get("status/edge-b/git")).to.equal(undefined);
    expect(await o.store.kv.get("st/desired/edge-b/git")).to.equal(undefined);
    expect((await o.store.kv.list("ob/edge-a/")).entries).to.have.length(1);
  });
});
