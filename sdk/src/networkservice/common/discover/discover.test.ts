import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { ConnectionSchema, NetworkServiceRequestSchema } from "@nsm-ts/api/networkservice";
import type { MatchSchema, NetworkService, NetworkServiceEndpoint } from "@nsm-ts/api/registry";
import { CallContext } from "@nsm-ts/base/context";
import { expect } from "chai";

type MatchInit = MessageInitShape<typeof MatchSchema>;
type ConnInit = MessageInitShape<typeof ConnectionSchema>;

import { Payload } from "@nsm-ts/api/constants";
import { MockClock } from "@nsm-ts/base/clock";
import { Code, isStatusError, StatusError } from "@nsm-ts/base/status";
import type { FindResult, RegistryEntry, RegistryHandler } from "@nsm-ts/sdk/registry";
import { newCheck } from "@nsm-ts/testing/elements";
import { memNseRegistry, memNsRegistry, nsOf as ns, nseOf as nse } from "@nsm-ts/testing/registry";
import { chain, handler } from "../../core/index.js";
import { type Candidates, candidatesKey, isExpired, isRegistryFailure, newServer, processLabel } from "./index.js";

/** `h`, except that every Find fails with Unavailable while `isDown()` (a registry outage). */
function outage<T extends RegistryEntry>(h: RegistryHandler<T>, isDown: () => boolean): RegistryHandler<T> {
  return {
    register: (c, e) => h.register(c, e),
    unregister: (c, e) => h.unregister(c, e),
    find(c, q) {
      if (!isDown()) return h.find(c, q);
      return (async function* (): AsyncIterable<FindResult<T>> {
        yield* [];
        throw new StatusError(Code.Unavailable, "No connection established: connect ECONNREFUSED");
      })();
    },
  };
}

const NS = "secure-intranet-connectivity";
/** Settles a call at once (so a rejection is never unhandled) to the error it threw, or undefined. */
const outcome = (p: Promise<unknown>): Promise<unknown> =>
  p.then(
    () => undefined,
    (e: unknown) => e,
  );
const labels = (l: Record<string, string>) => ({ [NS]: { labels: l } });

function endpoints(): NetworkServiceEndpoint[] {
  return ["firewall", "some-middle-app", "vpn-gateway"].map((app) =>
    nse({
      name: `nse-${app}`,
      url: `tcp://127.0.0.1:500${app.length % 10}`,
      networkServiceNames: [NS],
      networkServiceLabels: labels({ app }),
    }),
  );
}
const fromAnywhere = (): MatchInit => ({ sourceSelector: {}, routes: [{ destinationSelector: { app: "firewall" } }] });
const fromFirewall = (): MatchInit => ({
  sourceSelector: { app: "firewall" },
  routes: [{ destinationSelector: { app: "some-middle-app" } }],
});
const fromMiddle = (): MatchInit => ({
  sourceSelector: { app: "some-middle-app" },
  routes: [{ destinationSelector: { app: "vpn-gateway" } }],
});

describe("discover", () => {
  let clock: MockClock;
  let nsReg: ReturnType<typeof memNsRegistry>;
  let nseReg: ReturnType<typeof memNseRegistry>;
  let seen: Candidates[];
  let closes: Array<Candidates | undefined>;

  beforeEach(() => {
    clock = new MockClock();
    nsReg = memNsRegistry();
    nseReg = memNseRegistry();
    seen = [];
    closes = [];
  });
  afterEach(() => {
    expect(clock.pending(), "pending timers").to.equal(0);
    expect(nsReg.watchers + nseReg.watchers, "open watches").to.equal(0);
  });

  const setup = async (nses: NetworkServiceEndpoint[], ...matches: Array<MatchInit>): Promise<void> => {
    await nsReg.register(CallContext.create(), ns({ name: NS, payload: Payload.IP, matches }));
    for (const e of nses) await nseReg.register(CallContext.create(), e);
  };
  const server = () =>
    handler(
      chain(
        newServer({ ns: nsReg, nse: nseReg }),
        newCheck({
          beforeRequest: (ctx) => {
            seen.push(candidatesKey.get(ctx) ?? { endpoints: [] });
          },
          beforeClose: (ctx) => {
            closes.push(candidatesKey.get(ctx));
          },
        }),
      ),
    );
  const ctx = (ms = 100) => CallContext.create({ clock, deadline: clock.now() + ms });
  const request = (l: Record<string, string>, extra: ConnInit = {}) =>
    create(NetworkServiceRequestSchema, { connection: { id: "c1", networkService: NS, labels: l, ...(extra as object) } });
  const names = (c: Candidates | undefined) => c?.endpoints.map((e) => e.name);
  /** discover on `regs`, followed by a stand-in for roundrobin (the first candidate) that records what it saw. */
  const choosing = (regs: { ns: RegistryHandler<NetworkService>; nse: RegistryHandler<NetworkServiceEndpoint> }) =>
    handler(
      chain(
        newServer(regs),
        newCheck({
          beforeRequest: (c, r) => {
            const cands = candidatesKey.get(c);
            seen.push(cands ?? { endpoints: [] });
            if (r.connection && !r.connection.networkServiceEndpointName)
              r.connection.networkServiceEndpointName = cands?.endpoints[0]?.name ?? "";
          },
          beforeClose: (c) => {
            closes.push(candidatesKey.get(c));
          },
        }),
      ),
    );

  it("uses the match with an empty source selector when no other source selector fits", async () => {
    await setup(endpoints(), fromFirewall(), fromMiddle(), fromAnywhere());
    await server().request(ctx(), request({}));
    expect(names(seen[0])).to.deep.equal(["nse-firewall"]);
    expect(seen[0]?.networkService?.name).to.equal(NS);
  });

  it("uses the match whose non-empty source selector fits the connection labels", async () => {
    await setup(endpoints(), fromFirewall(), fromMiddle(), fromAnywhere());
    await server().request(ctx(), request({ app: "firewall" }));
    expect(names(seen[0])).to.deep.equal(["nse-some-middle-app"]);
  });

  it("takes the first fitting match: an empty source selector going first wins", async () => {
    await setup(endpoints(), fromAnywhere(), fromFirewall(), fromMiddle());
    await server().request(ctx(), request({ app: "firewall" }));
    expect(names(seen[0])).to.deep.equal(["nse-firewall"]);
  });

  it("offers every endpoint when no match fits", async () => {
    await setup(endpoints(), fromFirewall(), fromMiddle());
    await server().request(ctx(), request({ app: "unknown-app" }));
    expect(names(seen[0])).to.have.members(["nse-firewall", "nse-some-middle-app", "nse-vpn-gateway"]);
  });

  it("moves to the next match when a fallthrough match finds nothing", async () => {
    const nothing: MatchInit = { sourceSelector: {}, routes: [{ destinationSelector: { app: "absent" } }], fallthrough: true };
    await setup(endpoints(), nothing, fromAnywhere());
    await server().request(ctx(), request({}));
    expect(names(seen[0])).to.deep.equal(["nse-firewall"]);
  });

  it("fails with NotFound at the deadline when a match without fallthrough finds nothing", async () => {
    await setup(endpoints(), { sourceSelector: {}, routes: [{ destinationSelector: { app: "absent" } }] }, fromAnywhere());
    const p = outcome(server().request(ctx(), request({})));
    await nseReg.untilWatchers(1);
    await clock.advance(100);
    const err = await p;
    expect(isStatusError(err, Code.NotFound), String(err)).to.equal(true);
    expect((err as Error).message).to.match(/no endpoint of network service "secure-intranet-connectivity"/);
  });

  it("evaluates {{.label}} templates in selectors against the connection labels", async () => {
    const onNode = (name: string, node: string) =>
      nse({ name, url: "tcp://127.0.0.1:5001", networkServiceNames: [NS], networkServiceLabels: labels({ nodeName: node }) });
    await setup([onNode("a", "node-a"), onNode("b", "node-b")], {
      sourceSelector: { nodeName: "{{.nodeName}}" },
      routes: [{ destinationSelector: { nodeName: "{{ .nodeName }}" } }],
    });
    await server().request(ctx(), request({ nodeName: "node-b" }));
    expect(names(seen[0])).to.deep.equal(["b"]);
    expect(processLabel("x-{{.missing}}", {})).to.equal("x-<no value>");
    expect(processLabel("{{range .}}", { a: "b" })).to.equal("{{range .}}");
  });

  it("ignores endpoints whose registration expired", async () => {
    const es = endpoints();
    (es[0] as NetworkServiceEndpoint).expirationTime = timestampFromMs(clock.now() - 1);
    (es[1] as NetworkServiceEndpoint).expirationTime = timestampFromMs(clock.now() + 60_000);
    await setup(es);
    await server().request(ctx(), request({}));
    expect(names(seen[0])).to.have.members(["nse-some-middle-app", "nse-vpn-gateway"]);
  });

  it("uses the endpoint the request names", async () => {
    await setup(endpoints(), fromAnywhere());
    await server().request(ctx(), request({}, { networkServiceEndpointName: "nse-vpn-gateway" }));
    expect(names(seen[0])).to.deep.equal(["nse-vpn-gateway"]);
    expect(seen[0]?.networkService).to.equal(undefined);
  });

  it("fails with NotFound naming the service when it is not registered", async () => {
    for (const e of endpoints()) await nseReg.register(CallContext.create(), e);
    const p = outcome(server().request(ctx(), request({})));
    await nsReg.untilWatchers(1);
    await clock.advance(100);
    const err = await p;
    expect(isStatusError(err, Code.NotFound), String(err)).to.equal(true);
    expect((err as Error).message).to.equal(`discover: network service "${NS}" (network_service) is not found`);
    expect(seen).to.have.length(0);
  });

  it("matches the exact service name and takes the payload from the service", async () => {
    const s = server();
    await nsReg.register(CallContext.create(), ns({ name: `${NS}-wrong` }));
    await nseReg.register(CallContext.create(), nse({ name: "wrong", url: "tcp://127.0.0.1:1", networkServiceNames: [`${NS}-wrong`] }));
    const p = outcome(s.request(ctx(), request({})));
    await nsReg.untilWatchers(1);
    await clock.advance(100);
    expect(isStatusError(await p, Code.NotFound)).to.equal(true);

    await nsReg.register(CallContext.create(), ns({ name: NS, payload: Payload.IP }));
    await nseReg.register(CallContext.create(), nse({ name: "right", url: "tcp://127.0.0.1:2", networkServiceNames: [NS] }));
    const conn = await s.request(ctx(), request({}));
    expect(names(seen[0])).to.deep.equal(["right"]);
    expect(conn.payload).to.equal(Payload.IP);
  });

  it("matches the exact endpoint name, and answers NotFound at once (no watch) while it is not registered", async () => {
    const s = server();
    await nseReg.register(CallContext.create(), nse({ name: "final-endpoint-wrong", url: "tcp://127.0.0.1:1" }));
    const req = () => request({}, { networkServiceEndpointName: "final-endpoint" });
    // No clock movement: a healing client learns in one round trip that its endpoint is gone.
    const err = await outcome(s.request(ctx(), req()));
    expect(isStatusError(err, Code.NotFound), String(err)).to.equal(true);
    expect((err as Error).message).to.match(/"final-endpoint"/);

    await nseReg.register(CallContext.create(), nse({ name: "final-endpoint", url: "tcp://127.0.0.1:2" }));
    await s.request(ctx(), req());
    expect(names(seen[0])).to.deep.equal(["final-endpoint"]);
  });

  it("succeeds when a matching endpoint registers after the request started", async () => {
    await setup([], fromAnywhere());
    const p = outcome(server().request(ctx(1000), request({})));
    await nseReg.untilWatchers(1);
    await nseReg.register(
      CallContext.create(),
      nse({ name: "other", url: "tcp://127.0.0.1:1", networkServiceNames: [NS], networkServiceLabels: labels({ app: "vpn" }) }),
    );
    await nseReg.register(CallContext.create(), endpoints()[0] as NetworkServiceEndpoint);
    expect(await p).to.equal(undefined);
    expect(names(seen[0])).to.deep.equal(["nse-firewall"]);
  });

  it("does not fail Close when the endpoint is no longer registered", async () => {
    await server().close(CallContext.create(), create(ConnectionSchema, { id: "c1", networkServiceEndpointName: "nse" }));
    expect(closes).to.deep.equal([undefined]);
  });

  it("passes the registered endpoint to the elements after it on Close", async () => {
    await setup(endpoints());
    await server().close(CallContext.create(), create(ConnectionSchema, { id: "c1", networkServiceEndpointName: "nse-firewall" }));
    expect(names(closes[0])).to.deep.equal(["nse-firewall"]);
  });

  it("keeps the discovered endpoint on refresh and discovers anew once it is gone", async () => {
    await setup(endpoints());
    const s = choosing({ ns: nsReg, nse: nseReg });
    const c = ctx(); // one context = one connection's metadata
    const first = await s.request(c, request({}));
    expect(first.networkServiceEndpointName).to.equal("nse-firewall");
    const refreshed = await s.request(c, request({}, { networkServiceEndpointName: "nse-firewall" }));
    expect(refreshed.networkServiceEndpointName).to.equal("nse-firewall");
    expect(names(seen[1])).to.deep.equal(["nse-firewall"]);
    await nseReg.unregister(CallContext.create(), endpoints()[0] as NetworkServiceEndpoint);
    const healed = await s.request(c, request({}, { networkServiceEndpointName: "nse-firewall" }));
    expect(healed.networkServiceEndpointName).to.equal("nse-some-middle-app");
  });

  it("a connection first requested with its endpoint named (a heal at a restarted hop) is refreshed like one it discovered: kept while the registry is down, awaited while the registry has lost it", async () => {
    await setup(endpoints(), fromAnywhere());
    let down = false;
    const s = choosing({ ns: outage(nsReg, () => down), nse: outage(nseReg, () => down) });
    const c = ctx(1_000);
    const named = () => request({}, { networkServiceEndpointName: "nse-firewall" });
    await s.request(c, named());
    down = true;
    expect((await s.request(c, named())).networkServiceEndpointName, "kept while the registry cannot answer").to.equal("nse-firewall");
    down = false;
    // The registry restarted empty: the refresh waits for the endpoint to register again, not NotFound at once.
    const firewall = endpoints()[0] as NetworkServiceEndpoint;
    await nseReg.unregister(CallContext.create(), firewall);
    const refresh = s.request(c, named());
    await nseReg.untilWatchers(1);
    await nseReg.register(CallContext.create(), firewall);
    expect((await refresh).networkServiceEndpointName).to.equal("nse-firewall");
  });

  it("registry down: a refresh keeps the endpoint it discovered and Close reaches it; new Requests fail naming the registry", async () => {
    await setup(endpoints());
    let down = false;
    const s = choosing({ ns: outage(nsReg, () => down), nse: outage(nseReg, () => down) });
    const c = ctx();
    const first = await s.request(c, request({}));
    down = true;
    const refreshed = await s.request(c, request({}, { networkServiceEndpointName: first.networkServiceEndpointName }));
    expect(refreshed.networkServiceEndpointName).to.equal("nse-firewall");
    expect(
      seen[1]?.endpoints.map((e) => [e.name, e.url]),
      "the endpoint as last registered",
    ).to.deep.equal([["nse-firewall", endpoints()[0]?.url]]);
    for (const r of [request({}), request({}, { networkServiceEndpointName: "nse-vpn-gateway" })]) {
      const err = await outcome(s.request(ctx(), r));
      expect(isStatusError(err, Code.Unavailable), String(err)).to.equal(true);
      expect(isRegistryFailure(err)).to.equal(true);
      expect((err as Error).message).to.match(/^discover: the registry cannot answer the look-up of /);
    }
    await s.close(c, refreshed);
    expect(names(closes[0])).to.deep.equal(["nse-firewall"]);
  });

  it("isExpired takes an endpoint whose expiration is not a valid Timestamp for expired, without throwing", () => {
    const bad = nse({ name: "nse-bad", expirationTime: { seconds: 4_000n, nanos: -5 } }); // in the future, but malformed
    const good = nse({ name: "nse-good", expirationTime: timestampFromMs(2_000) });
    expect([isExpired(bad, 1_000), isExpired(good, 1_000), isExpired(good, 3_000)]).to.deep.equal([true, false, true]);
  });
});
