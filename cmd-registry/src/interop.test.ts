/**
 * cmd-registry as a separate process, driven by an independent stack (grpc-js + proto-loader + hand-made JWTs):
 * register a network service and an endpoint, find with and without watch, the delete event on unregister and on
 * expiry, health SERVING for both registry services, malformed input, and a graceful SIGTERM.
 */
import * as grpc from "@grpc/grpc-js";
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

interface Nse {
  name: string;
  network_service_names: string[];
  url: string;
  path_ids: string[];
  expiration_time: { seconds: string; nanos: number } | null;
  initial_registration_time: { seconds: string; nanos: number } | null;
}
interface NseResponse {
  network_service_endpoint: Nse;
  deleted: boolean;
}

describe("cmd-registry process with grpc-js + proto-loader", function () {
  this.timeout(30_000);
  const services = loadServices();
  let reg: Registry;
  const clients: PlainClient[] = [];
  const streams: Stream<unknown>[] = [];
  const client = (ctor: typeof services.ns): PlainClient => {
    const c = plainClient(ctor, reg.target);
    clients.push(c);
    return c;
  };
  const stream = <M>(c: PlainClient, req: unknown): Stream<M> => {
    const s = new Stream<M>(c, "Find", req, callMetadata("spiffe://test.com/watcher", false));
    streams.push(s as Stream<unknown>);
    return s;
  };

  beforeEach(async () => {
    reg = await startRegistry({ NSM_EXPIRE_PERIOD: "2s" });
  });
  afterEach(async () => {
    for (const s of streams.splice(0)) s.cancel();
    for (const c of clients.splice(0)) grpc.Client.prototype.close.call(c);
    await stopAll();
    expect(running()).to.equal(0);
  });

  it("registers, finds with and without watch, and reports unregister and expiry as delete events", async () => {
    const nsc = client(services.ns);
    const nsec = client(services.nse);
    const me = "spiffe://test.com/endpoint";

    const svc = await unary<{ name: string; payload: string }>(nsc, "Register", { name: "svc-a" }, callMetadata(me));
    expect(svc).to.deep.include({ name: "svc-a", payload: "IP" });
    const nsFound = await stream<{ network_service: { name: string } }>(nsc, { network_service: { name: "svc-a" }, watch: false }).all();
    expect(nsFound.map((r) => r.network_service.name)).to.deep.equal(["svc-a"]);

    const watch = stream<NseResponse>(nsec, { network_service_endpoint: { network_service_names: ["svc-a"] }, watch: true });
    let header: string | undefined;
    const registered = await unary<Nse>(
      nsec,
      "Register",
      { name: "nse-1", network_service_names: ["svc-a"], url: "tcp://198.51.100.1:5001" },
      callMetadata(me),
      (m) => (header = m.get("path")[0] as string | undefined),
    );
    expect(registered.path_ids[0]).to.equal(me);
    expect(registered.expiration_time).to.not.equal(null);
    expect(registered.initial_registration_time).to.not.equal(null);
    expect(JSON.parse(header ?? "null")).to.have.keys("Index", "PathSegments");

    const first = await watch.next();
    expect([first.network_service_endpoint.name, first.deleted]).to.deep.equal(["nse-1", false]);
    const found = await stream<NseResponse>(nsec, { network_service_endpoint: { name: "nse-1" }, watch: false }).all();
    expect(found.map((r) => r.network_service_endpoint.url)).to.deep.equal(["tcp://198.51.100.1:5001"]);

    await unary(nsec, "Unregister", { name: "nse-1" }, callMetadata(me));
    const gone = await watch.next();
    expect([gone.network_service_endpoint.name, gone.deleted]).to.deep.equal(["nse-1", true]);

    // Not refreshed: it expires after NSM_EXPIRE_PERIOD (2 s) and the watcher is told.
    const t0 = Date.now();
    await unary(nsec, "Register", { name: "nse-2", network_service_names: ["svc-a"], url: "unix:///run/nse-2.sock" }, callMetadata(me));
    expect((await watch.next()).deleted).to.equal(false);
    const expired = await watch.next();
    expect([expired.network_service_endpoint.name, expired.deleted]).to.deep.equal(["nse-2", true]);
    expect(Date.now() - t0).to.be.within(1500, 10_000);
    expect(await stream<NseResponse>(nsec, { network_service_endpoint: { name: "nse-2" }, watch: false }).all()).to.deep.equal([]);
  });

  it("reports both registry services SERVING in health", async () => {
    const h = client(services.health);
    for (const service of ["registry.NetworkServiceRegistry", "registry.NetworkServiceEndpointRegistry", ""]) {
      const res = await unary<{ status: string }>(h, "Check", { service }, new grpc.Metadata());
      expect(res.status, service).to.equal("SERVING");
    }
  });

  it("answers malformed input with INVALID_ARGUMENT naming the field and keeps serving", async () => {
    const nsec = client(services.nse);
    const me = "spiffe://test.com/endpoint";
    const cases: [string, unknown, grpc.Metadata][] = [
      ["name", { name: "" }, callMetadata(me)],
      ["url", { name: "x", url: "http://198.51.100.1:80" }, callMetadata(me)],
      [
        "expiration_time",
        { name: "x", expiration_time: { seconds: String(Math.floor(Date.now() / 1000) - 60), nanos: 0 } },
        callMetadata(me),
      ],
      ["network_service_labels", { name: "x", network_service_labels: { svc: { labels: { "": "v" } } } }, callMetadata(me)],
      [
        "path",
        { name: "x" },
        (() => {
          const md = callMetadata(me, false);
          md.set("path", "[1,2");
          return md;
        })(),
      ],
    ];
    for (const [field, req, md] of cases) {
      const err = await unary(nsec, "Register", req, md).then(
        () => undefined,
        (e: grpc.ServiceError) => e,
      );
      expect(err?.code, field).to.equal(grpc.status.INVALID_ARGUMENT);
      expect(err?.details).to.contain(field);
      const ok = await unary<Nse>(nsec, "Register", { name: "fine", url: "tcp://198.51.100.1:5001" }, callMetadata(me));
      expect(ok.name).to.equal("fine");
    }
    // Watches whose clients vanish at once do not disturb the server.
    for (let i = 0; i < 10; i++) stream(nsec, { network_service_endpoint: {}, watch: true }).cancel();
    const all = await stream<NseResponse>(nsec, { network_service_endpoint: { name: "fine" }, watch: false }).all();
    expect(all).to.have.length(1);
  });

  it("ends open watches and exits 0 on SIGTERM", async () => {
    const nsec = client(services.nse);
    const watch = stream<NseResponse>(nsec, { network_service_endpoint: {}, watch: true });
    await unary(nsec, "Register", { name: "w", url: "tcp://198.51.100.1:5001" }, callMetadata("spiffe://test.com/x"));
    await watch.next();
    const code = await kill(reg, "SIGTERM");
    expect(code).to.equal(0);
    const err = await watch.next().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).to.not.equal(undefined);
  });
});
