import { Code, StatusError } from "@nsm-ts/base/status";
import { expect } from "chai";
import { maglevSize, maglevTable, nextPrime } from "./maglev.js";
import { pickRule, renderServiceTable, roundRobinSlots, selectBackends, serviceTableName } from "./render.js";
import type { ServiceBackend, ServiceFrontend, ServiceView } from "./view.js";

const be = (name: string, address: string, node: string, zone: string, extra: Partial<ServiceBackend> = {}): ServiceBackend => ({
  name,
  address,
  port: 8080,
  protocol: "tcp",
  portName: "http",
  node,
  zone,
  weight: 1,
  health: "healthy",
  ...extra,
});
const fe = (address: string, policy: ServiceFrontend["policy"], extra: Partial<ServiceFrontend> = {}): ServiceFrontend => ({
  address,
  port: 80,
  protocol: "tcp",
  policy,
  portName: "http",
  ...extra,
});
const backends = [
  be("a", "198.51.100.11", "node-1", "z1"),
  be("b", "198.51.100.12", "node-2", "z1"),
  be("c", "198.51.100.13", "node-3", "z2"),
  be("sick", "198.51.100.14", "node-1", "z1", { health: "unhealthy" }),
  be("draining", "198.51.100.15", "node-1", "z1", { health: "draining" }),
  be("udp", "198.51.100.16", "node-1", "z1", { protocol: "udp" }),
  be("v6", "fd00::16", "node-1", "z1"),
];
const view = (frontends: ServiceFrontend[], bs: ServiceBackend[] = backends): ServiceView => ({
  name: "web",
  frontends,
  backends: bs,
  revision: "7",
});

describe("services: selectBackends", () => {
  it("keeps healthy backends of the frontend's port, protocol and family", () => {
    expect(selectBackends(fe("203.0.113.1", "round-robin"), backends, { node: "node-1", zone: "z1" }).map((b) => b.name)).to.deep.equal([
      "a",
      "b",
      "c",
    ]);
    expect(selectBackends(fe("fd00::1", "round-robin"), backends, { node: "", zone: "" }).map((b) => b.name)).to.deep.equal(["v6"]);
  });

  it("closest: same node, else same zone, else any healthy", () => {
    const f = fe("203.0.113.2", "closest");
    expect(selectBackends(f, backends, { node: "node-1", zone: "z1" }).map((b) => b.name)).to.deep.equal(["a"]);
    expect(selectBackends(f, backends, { node: "node-9", zone: "z1" }).map((b) => b.name)).to.deep.equal(["a", "b"]);
    expect(selectBackends(f, backends, { node: "node-9", zone: "z9" }).map((b) => b.name)).to.deep.equal(["a", "b", "c"]);
    // The local one fails its health: the zone takes over.
    const sick = backends.map((b) => (b.name === "a" ? { ...b, health: "unhealthy" as const } : b));
    expect(selectBackends(f, sick, { node: "node-1", zone: "z1" }).map((b) => b.name)).to.deep.equal(["b"]);
  });
});

describe("services: rendering", () => {
  it("round robin: numgen inc over every healthy backend, one slot each", () => {
    const r = pickRule(view([]), fe("203.0.113.1", "round-robin"), backends.slice(0, 3));
    expect(r).to.equal(
      "meta l4proto tcp dnat ip to numgen inc mod 3 map { 0 : 198.51.100.11 . 8080, 1 : 198.51.100.12 . 8080, 2 : 198.51.100.13 . 8080 }",
    );
  });

  it("weights become interleaved slots", () => {
    expect(roundRobinSlots([1, 1, 1])).to.deep.equal([0, 1, 2]);
    expect(roundRobinSlots([2, 4])).to.deep.equal([1, 0, 1]);
    const s = roundRobinSlots([3, 1]);
    expect(s.filter((i) => i === 0)).to.have.length(3);
    expect(s.indexOf(1)).to.be.within(1, 2); // not after all of backend 0's turns
    expect(roundRobinSlots([65535, 1]).length).to.be.at.most(65536);
  });

  it("one backend: a plain dnat; none: reject at once", () => {
    expect(pickRule(view([]), fe("203.0.113.1", "round-robin"), backends.slice(0, 1))).to.equal(
      "meta l4proto tcp dnat ip to 198.51.100.11:8080",
    );
    expect(pickRule(view([]), fe("fd00::1", "round-robin"), [be("v6", "fd00::16", "", "")])).to.equal(
      "meta l4proto tcp dnat ip6 to [fd00::16]:8080",
    );
    expect(pickRule(view([]), fe("203.0.113.1", "round-robin"), [])).to.equal("meta l4proto tcp reject with tcp reset");
    expect(pickRule(view([]), fe("203.0.113.1", "round-robin", { protocol: "udp" }), [])).to.equal("meta l4proto udp reject");
  });

  it("consistent hash: jhash of the 5-tuple (or the client address with session affinity) into a Maglev table", () => {
    const r = pickRule(view([]), fe("203.0.113.3", "consistent-hash"), backends.slice(0, 3));
    expect(r).to.match(
      /^meta l4proto tcp dnat ip to jhash ip saddr \. ip daddr \. meta l4proto \. th sport \. th dport mod 31 seed 0x[0-9a-f]{8} map \{ 0 : /,
    );
    expect(r.match(/ : /g)).to.have.length(31);
    const sticky = pickRule({ ...view([]), sessionAffinitySeconds: 60 }, fe("203.0.113.3", "consistent-hash"), backends.slice(0, 3));
    expect(sticky).to.contain("jhash ip saddr mod 31");
    // The seed is per service and stable, so a flow keeps its slot across re-renders.
    expect(pickRule(view([]), fe("203.0.113.3", "consistent-hash"), backends.slice(0, 3))).to.equal(r);
  });

  it("renders one inet table per service with a nat output chain dispatching each frontend", () => {
    const t = renderServiceTable(view([fe("203.0.113.1", "round-robin"), fe("203.0.113.2", "closest")]), { node: "node-1", zone: "z1" });
    expect(t?.name).to.equal(serviceTableName("web"));
    expect(t?.family).to.equal("inet");
    expect(t?.chains[0]?.hook).to.deep.equal({ type: "nat", hook: "output", priority: -100 });
    expect(t?.chains[0]?.rules).to.deep.equal([
      "ip daddr 203.0.113.1 meta l4proto tcp th dport 80 jump pick_0",
      "ip daddr 203.0.113.2 meta l4proto tcp th dport 80 jump pick_1",
    ]);
    expect(t?.chains[2]?.rules).to.deep.equal(["meta l4proto tcp dnat ip to 198.51.100.11:8080"]);
  });

  it("address-only services translate the address of every packet and keep the port", () => {
    const f = fe("203.0.113.5", "round-robin", { port: 0, protocol: "any", portName: "" });
    const bs = [
      be("a", "198.51.100.11", "n", "z", { port: 0, protocol: "any", portName: "" }),
      be("b", "198.51.100.12", "n", "z", { port: 0, protocol: "any", portName: "" }),
    ];
    const t = renderServiceTable(view([f], bs), { node: "n", zone: "z" });
    expect(t?.chains[0]?.rules).to.deep.equal(["ip daddr 203.0.113.5 jump pick_0"]);
    expect(t?.chains[1]?.rules).to.deep.equal(["dnat ip to numgen inc mod 2 map { 0 : 198.51.100.11, 1 : 198.51.100.12 }"]);
    expect(pickRule(view([]), { ...f, policy: "consistent-hash" }, bs)).to.match(/^dnat ip to jhash ip saddr \. ip daddr mod 31 seed/);
    expect(pickRule(view([]), f, [])).to.equal("reject");
    expect(() => renderServiceTable(view([{ ...f, protocol: "tcp" }], bs), { node: "n", zone: "z" })).to.throw("frontends[0].port");
  });

  it("frontends with the same policy and backend set share one chain; no frontend means no table", () => {
    const t = renderServiceTable(view([fe("203.0.113.1", "round-robin"), fe("203.0.113.9", "round-robin")]), { node: "n", zone: "z" });
    expect(t?.chains).to.have.length(2);
    expect(renderServiceTable(view([]), { node: "n", zone: "z" })).to.equal(undefined);
  });

  it("memoises per view object and place", () => {
    const v = view([fe("203.0.113.1", "round-robin")]);
    const a = renderServiceTable(v, { node: "node-1", zone: "z1" });
    expect(renderServiceTable(v, { node: "node-1", zone: "z1" })).to.equal(a);
    expect(renderServiceTable({ ...v }, { node: "node-1", zone: "z1" })).to.not.equal(a);
  });

  it("rejects addresses and ports that are not, naming the field", () => {
    const err = (() => {
      try {
        renderServiceTable(view([fe("203.0.113.1; drop", "round-robin")]), { node: "", zone: "" });
      } catch (e) {
        return e;
      }
      return undefined;
    })();
    expect(err).to.be.instanceOf(StatusError);
    expect((err as StatusError).code).to.equal(Code.InvalidArgument);
    expect((err as StatusError).message).to.contain("frontends[0].address");
    expect(() =>
      renderServiceTable(view([fe("203.0.113.1", "round-robin")], [be("x", "198.51.100.1", "", "", { port: 0 })]), { node: "", zone: "" }),
    ).to.throw("backends[0].port");
  });

  it("names tables within nft's limits for long service names", () => {
    const n = serviceTableName("a".repeat(253));
    expect(n).to.match(/^nsmts_svc_a{24}_[0-9a-f]{8}$/);
    expect(serviceTableName("my.svc-1")).to.match(/^nsmts_svc_my_svc_1_[0-9a-f]{8}$/);
  });
});

describe("services: Maglev", () => {
  it("sizes tables as primes with room per backend", () => {
    expect(nextPrime(32)).to.equal(37);
    expect(maglevSize(3)).to.equal(31);
    expect(maglevSize(10_000)).to.equal(65521);
    expect(maglevSize(70_000)).to.equal(nextPrime(70_000));
  });

  it("spreads slots evenly, ignores input order, and moves only the removed backend's slots", () => {
    const keys = Array.from({ length: 10 }, (_, i) => `198.51.100.${i}|80`);
    const size = maglevSize(keys.length);
    const t = maglevTable(keys, size);
    const counts = keys.map((_, i) => t.filter((x) => x === i).length);
    expect(Math.min(...counts)).to.be.at.least(Math.floor(size / 10) - 1);
    const rev = maglevTable([...keys].reverse(), size);
    expect(rev.map((i) => keys.length - 1 - i)).to.deep.equal(t);
    const without = maglevTable(
      keys.filter((_, i) => i !== 3),
      size,
    );
    const name = (tab: number[], ks: string[]) => tab.map((i) => ks[i]);
    const before = name(t, keys);
    const after = name(
      without,
      keys.filter((_, i) => i !== 3),
    );
    const moved = before.filter((k, slot) => k !== keys[3] && k !== after[slot]).length;
    expect(moved).to.be.at.most(Math.ceil(size * 0.1)); // Maglev's promise: little churn besides the removed share
  });

  it("gives a heavier backend more slots", () => {
    const t = maglevTable(["a", "b"], 31, [3, 1]);
    expect(t.filter((x) => x === 0).length).to.be.greaterThan(20);
  });
});
