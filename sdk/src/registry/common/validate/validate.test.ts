/**
 * registry validate: the limits of `@nsm-ts/base/limits` and invalid timestamps are refused with
 * `InvalidArgument` naming the field, through the whole registry server chain (never `Internal`), and entries at
 * the limits still register.
 */
import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { type NetworkService, type NetworkServiceEndpoint, NetworkServiceEndpointSchema, NetworkServiceSchema } from "@nsm-ts/api/registry";
import { MockClock } from "@nsm-ts/base/clock";
import { CallContext } from "@nsm-ts/base/context";
import { MAX_LABEL_KEY_BYTES, MAX_LABEL_VALUE_BYTES, MAX_LABELS, MAX_NAME_BYTES, MAX_REGISTRY_ENTRY_BYTES } from "@nsm-ts/base/limits";
import { Code, StatusError } from "@nsm-ts/base/status";
import { createTestTokenGenerator } from "@nsm-ts/testing/token";
import { expect } from "chai";
import { createRegistryServer, type RegistryServer } from "../../chains/server.js";
import { createMemoryStore, type RegistryStore } from "../../store/index.js";

function labels(n: number, keyBytes = 4, valueBytes = 4): Record<string, string> {
  const out: Record<string, string> = {};
  for (let i = 0; i < n; i++) out[String(i).padStart(keyBytes, "k")] = "v".repeat(valueBytes);
  return out;
}

describe("registry validate (limits)", () => {
  let clock: MockClock;
  let ac: AbortController;
  let nsStore: RegistryStore<NetworkService>;
  let nseStore: RegistryStore<NetworkServiceEndpoint>;
  let srv: RegistryServer;
  let ctx: CallContext;

  beforeEach(() => {
    clock = new MockClock(Date.parse("2030-01-01T00:00:00Z"));
    ac = new AbortController();
    nsStore = createMemoryStore("ns", { clock });
    nseStore = createMemoryStore("nse", { clock });
    srv = createRegistryServer({ tokenGenerator: createTestTokenGenerator(), nsStore, nseStore });
    ctx = CallContext.create({ clock, signal: ac.signal });
  });
  afterEach(async () => {
    ac.abort();
    await nsStore.close();
    await nseStore.close();
    expect(clock.pending()).to.equal(0);
  });

  async function refused(p: Promise<unknown>, field: RegExp): Promise<void> {
    const err = await p.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err, "must be refused").to.be.instanceOf(StatusError);
    expect((err as StatusError).code, (err as StatusError).message).to.equal(Code.InvalidArgument);
    expect((err as StatusError).message).to.match(field);
  }

  const endpoint = (init: Parameters<typeof create<typeof NetworkServiceEndpointSchema>>[1]) =>
    create(NetworkServiceEndpointSchema, { name: "nse-1", url: "tcp://127.0.0.1:5000", networkServiceNames: ["svc"], ...init });

  it("an expiration of -1e15 s is InvalidArgument naming expiration_time.seconds, not Internal", async () => {
    await refused(
      srv.nse.register(ctx, endpoint({ expirationTime: { seconds: -1_000_000_000_000_000n, nanos: 0 } })),
      /^validate: expiration_time\.seconds /,
    );
  });

  it("expiration_time with negative nanos or nanos ≥ 1e9 is refused, not stored", async () => {
    const future = BigInt(Math.floor(clock.now() / 1000) + 30);
    await refused(srv.nse.register(ctx, endpoint({ expirationTime: { seconds: future, nanos: -1 } })), /expiration_time\.nanos/);
    await refused(srv.nse.register(ctx, endpoint({ expirationTime: { seconds: future, nanos: 1_000_000_000 } })), /expiration_time\.nanos/);
    await refused(srv.nse.register(ctx, endpoint({ expirationTime: { seconds: 253_402_300_800n, nanos: 0 } })), /expiration_time\.seconds/);
    expect(await nseStore.get("nse-1")).to.equal(undefined);
  });

  it("an interdomain name with a domain that is no DNS name, or nothing before @, is InvalidArgument naming the field", async () => {
    // Found by the property-based test: "@ " went on to the interdomain switch and came back FailedPrecondition.
    await refused(srv.nse.register(ctx, endpoint({ name: "@ " })), /^validate: name "@ " has nothing before "@"/);
    await refused(srv.nse.register(ctx, endpoint({ name: "nse@ " })), /^validate: name "nse@ ": domain " " is not a DNS name/);
    await refused(srv.nse.register(ctx, endpoint({ name: "nse@" })), /^validate: name .* is not a DNS name/);
    await refused(srv.nse.register(ctx, endpoint({ networkServiceNames: ["svc@a@b"] })), /^validate: network_service_names\[0\] /);
    await refused(srv.ns.register(ctx, create(NetworkServiceSchema, { name: "svc@bad_domain" })), /^validate: name /);
    await refused(srv.nse.unregister(ctx, endpoint({ name: "nse@-x" })), /^validate: name /);
    // A well-formed domain goes on to the interdomain switch (no proxy configured here: FailedPrecondition).
    const err = await srv.nse.register(ctx, endpoint({ name: "nse@cluster-b.example." })).then(
      () => undefined,
      (e: unknown) => e as StatusError,
    );
    expect(err?.code).to.equal(Code.FailedPrecondition);
  });

  it("an NSE with more than MAX_LABELS labels for a service is refused naming the map", async () => {
    await refused(
      srv.nse.register(ctx, endpoint({ networkServiceLabels: { svc: { labels: labels(100_000) } } })),
      /network_service_labels\["svc"\]\.labels has more than 256 labels/,
    );
  });

  it("oversized label keys and values, names and URLs are refused naming the field", async () => {
    await refused(
      srv.nse.register(ctx, endpoint({ networkServiceLabels: { svc: { labels: { ["k".repeat(MAX_LABEL_KEY_BYTES + 1)]: "v" } } } })),
      /network_service_labels\["svc"\]\.labels key "k+"… is longer than 1024 bytes/,
    );
    await refused(
      srv.nse.register(ctx, endpoint({ networkServiceLabels: { svc: { labels: { k: "é".repeat(MAX_LABEL_VALUE_BYTES / 2 + 1) } } } })),
      /labels\["k"\] is longer than 4096 bytes/,
    );
    await refused(srv.nse.register(ctx, endpoint({ name: "n".repeat(MAX_NAME_BYTES + 1) })), /^validate: name is longer/);
    await refused(srv.nse.register(ctx, endpoint({ url: `tcp://${"h".repeat(5000)}:1` })), /^validate: url is longer/);
    await refused(
      srv.nse.register(ctx, endpoint({ networkServiceNames: new Array(300).fill("svc") })),
      /network_service_names has 300 items/,
    );
  });

  it("a network service of megabytes is refused: its payload, its matches, its encoded size", async () => {
    await refused(
      srv.ns.register(ctx, create(NetworkServiceSchema, { name: "ns", payload: "x".repeat(3_000_000) })),
      /^validate: payload is longer/,
    );
    const matches = Array.from({ length: 100 }, () => ({ sourceSelector: labels(100, 8, 60) }));
    await refused(
      srv.ns.register(ctx, create(NetworkServiceSchema, { name: "ns", matches })),
      new RegExp(`network_service is \\d+ bytes encoded, more than ${MAX_REGISTRY_ENTRY_BYTES}`),
    );
    expect(await nsStore.get("ns")).to.equal(undefined);
  });

  it("entries at the limits register", async () => {
    const l = labels(MAX_LABELS, 4, 100);
    const res = await srv.nse.register(
      ctx,
      endpoint({ networkServiceLabels: { svc: { labels: l } }, expirationTime: timestampFromMs(clock.now() + 10_000) }),
    );
    expect(Object.keys(res.networkServiceLabels.svc?.labels ?? {})).to.have.length(MAX_LABELS);
    await srv.ns.register(
      ctx,
      create(NetworkServiceSchema, { name: "svc", payload: "ETHERNET", matches: [{ sourceSelector: labels(10) }] }),
    );
    await srv.nse.unregister(ctx, endpoint({}));
  });

  it("a Find whose template is larger than an entry may be is refused naming the field; a normal Find works", async () => {
    const find = async (template: NetworkServiceEndpoint): Promise<string[]> => {
      const out: string[] = [];
      for await (const r of srv.nse.find(ctx, { template, watch: false })) out.push(r.entry.name);
      return out;
    };
    await refused(find(create(NetworkServiceEndpointSchema, { name: "x".repeat(1024 * 1024) })), /query\.name/);
    await refused(
      find(create(NetworkServiceEndpointSchema, { networkServiceNames: ["y".repeat(100 * 1024)] })),
      /query template is \d+ bytes/,
    );
    await srv.nse.register(ctx, endpoint({}));
    expect(await find(create(NetworkServiceEndpointSchema, { networkServiceNames: ["svc"] }))).to.deep.equal(["nse-1"]);
  });
});
