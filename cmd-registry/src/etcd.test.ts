/**
 * Two cmd-registry processes on one etcd (NSM_REGISTRY_STORE=etcd://…): each sees the other's registrations and
 * watch events, killing and restarting one loses nothing, and an entry whose owner stops refreshing disappears at
 * its expiration from both (a replica deletes it at that time; etcd's shared lease is the safety net when none
 * runs). Skipped, with the reason, when the etcd binary is missing.
 */
import * as grpc from "@grpc/grpc-js";
import { type EtcdInstance, etcdAvailable, startEtcd } from "@nsm-ts/testing/etcd";
import { expect } from "chai";
import {
  callMetadata,
  kill,
  loadServices,
  type PlainClient,
  plainClient,
  type Registry,
  running,
  Stream,
  startRegistry,
  stopAll,
  unary,
} from "./process.fixture.js";

interface NseResponse {
  network_service_endpoint: { name: string; url: string };
  deleted: boolean;
}

describe("cmd-registry replicas on etcd", function () {
  this.timeout(40_000);
  const services = loadServices();
  let etcd: EtcdInstance | undefined;
  let store = "";
  const clients: PlainClient[] = [];
  const streams: Stream<unknown>[] = [];
  const me = "spiffe://test.com/endpoint";

  before(async function () {
    const check = etcdAvailable();
    if (!check.available) {
      console.warn(`    skipping the etcd replica cases: ${check.reason}`);
      this.skip();
    }
    etcd = await startEtcd();
    store = `etcd://${etcd.endpoints.map((e) => e.replace(/^https?:\/\//, "")).join(",")}`;
  });
  after(async () => {
    await etcd?.stop();
  });
  afterEach(async () => {
    for (const s of streams.splice(0)) s.cancel();
    for (const c of clients.splice(0)) grpc.Client.prototype.close.call(c);
    await stopAll();
    expect(running()).to.equal(0);
  });

  const nseClient = (r: Registry): PlainClient => {
    const c = plainClient(services.nse, r.target);
    clients.push(c);
    return c;
  };
  const watch = (c: PlainClient, name: string): Stream<NseResponse> => {
    const s = new Stream<NseResponse>(c, "Find", { network_service_endpoint: { name }, watch: true }, callMetadata(me, false));
    streams.push(s as Stream<unknown>);
    return s;
  };
  const find = (c: PlainClient, name: string): Promise<NseResponse[]> =>
    new Stream<NseResponse>(c, "Find", { network_service_endpoint: { name }, watch: false }, callMetadata(me, false)).all();
  const register = (c: PlainClient, name: string) =>
    unary(c, "Register", { name, network_service_names: ["svc"], url: "tcp://198.51.100.7:5001" }, callMetadata(me));

  it("each replica sees the other's registrations and watch events", async () => {
    const [a, b] = await Promise.all([startRegistry({ NSM_REGISTRY_STORE: store }), startRegistry({ NSM_REGISTRY_STORE: store })]);
    const ca = nseClient(a);
    const cb = nseClient(b);
    const wb = watch(cb, "shared-1");
    const wa = watch(ca, "shared-2");
    // A watch is live once it reports a snapshot or a change; register a marker first so both are known attached.
    await register(ca, "shared-1");
    expect((await wb.next()).deleted).to.equal(false);
    await register(cb, "shared-2");
    expect((await wa.next()).deleted).to.equal(false);
    expect((await find(cb, "shared-1")).map((r) => r.network_service_endpoint.url)).to.deep.equal(["tcp://198.51.100.7:5001"]);
    await unary(ca, "Unregister", { name: "shared-1" }, callMetadata(me));
    const ev = await wb.next();
    expect([ev.network_service_endpoint.name, ev.deleted]).to.deep.equal(["shared-1", true]);
    // Ownership is shared too: another identity cannot take over the name through the other replica.
    const err = await unary(ca, "Unregister", { name: "shared-2" }, callMetadata("spiffe://test.com/intruder")).then(
      () => undefined,
      (e: grpc.ServiceError) => e,
    );
    expect(err?.code).to.equal(grpc.status.PERMISSION_DENIED);
  });

  it("killing and restarting one replica loses nothing", async () => {
    const a = await startRegistry({ NSM_REGISTRY_STORE: store });
    const b = await startRegistry({ NSM_REGISTRY_STORE: store });
    for (let i = 0; i < 20; i++) await register(nseClient(a), `restart-${i}`);
    await kill(a);
    const port = Number(a.target.split(":")[1]);
    const a2 = await startRegistry({ NSM_REGISTRY_STORE: store }, port);
    for (const r of [a2, b]) {
      const c = nseClient(r);
      const names: string[] = [];
      for (let i = 0; i < 20; i++) names.push(...(await find(c, `restart-${i}`)).map((x) => x.network_service_endpoint.name));
      expect(names).to.have.length(20);
    }
    // The restarted replica takes writes and its peer's watch sees them.
    const wb = watch(nseClient(b), "restart-0");
    expect((await wb.next()).deleted).to.equal(false);
    await unary(nseClient(a2), "Unregister", { name: "restart-0" }, callMetadata(me));
    expect((await wb.next()).deleted).to.equal(true);
  });

  it("an entry that is not refreshed disappears at its expiration from both replicas", async () => {
    const vars = { NSM_REGISTRY_STORE: store, NSM_EXPIRE_PERIOD: "2s" };
    const [a, b] = await Promise.all([startRegistry(vars), startRegistry(vars)]);
    const wa = watch(nseClient(a), "short-lived");
    const wb = watch(nseClient(b), "short-lived");
    const t0 = Date.now();
    await register(nseClient(a), "short-lived");
    expect((await wa.next()).deleted).to.equal(false);
    expect((await wb.next()).deleted).to.equal(false);
    const [ea, eb] = await Promise.all([wa.next(), wb.next()]);
    expect([ea.deleted, eb.deleted]).to.deep.equal([true, true]);
    expect(Date.now() - t0).to.be.within(1500, 15_000);
    expect(await find(nseClient(a), "short-lived")).to.deep.equal([]);
    expect(await find(nseClient(b), "short-lived")).to.deep.equal([]);
  });
});
