/** dnscontext client/server and vl3dns as chain elements (no gRPC). */
import { create } from "@bufbuild/protobuf";
import { type Connection, ConnectionContextSchema, IPContextSchema, NetworkServiceRequestSchema } from "@nsm-ts/api/networkservice";
import { CallContext } from "@nsm-ts/base/context";
import { Code, StatusError } from "@nsm-ts/base/status";
import { newErrorElement } from "@nsm-ts/testing/elements";
import { expect } from "chai";
import { MemoryRecords } from "../../../dns/memory.js";
import * as metadata from "../../common/metadata/index.js";
import { chain, handler } from "../../core/index.js";
import type { NetworkServiceElement } from "../../core/types.js";
import { DnsConfigStore, newClient, newServer, type StoredDnsConfig, vl3dns } from "./index.js";

const ctx = (): CallContext => CallContext.create();
const request = (conn: { id: string; labels?: Record<string, string> }) =>
  create(NetworkServiceRequestSchema, {
    connection: { networkService: "my-vl3", path: { index: 0, pathSegments: [{ name: "nsc-1", id: conn.id }] }, ...conn },
  });
/** An endpoint stand-in that hands out `src` as the client's address. */
const ipam = (src: string): NetworkServiceElement => ({
  name: "ipam",
  async request(c, req, next) {
    const conn = req.connection as Connection;
    conn.context ??= create(ConnectionContextSchema);
    conn.context.ipContext = create(IPContextSchema, { srcIpAddrs: [`${src}/32`] });
    return next.request(c, req);
  },
  close: (c, conn, next) => next.close(c, conn),
});

describe("dnscontext", () => {
  it("client: merges every connection's configs into the store, updates on refresh, forgets on Close, one event per change", async () => {
    const store = new DnsConfigStore();
    const events: StoredDnsConfig[][] = [];
    store.onChange((c) => events.push([...c]));
    let configs = [{ dnsServerIps: ["169.254.0.53"], searchDomains: ["alpha"] }];
    const h = handler(
      chain(
        newClient(store),
        metadata.newServer(),
        newServer(() => configs),
      ),
    );
    const c1 = await h.request(ctx(), request({ id: "c1" }));
    const c2 = await h.request(ctx(), request({ id: "c2" }));
    expect(store.configs(), "same config of two connections counted once").to.deep.equal([
      { dnsServerIps: ["169.254.0.53"], searchDomains: ["alpha"] },
    ]);
    expect(events).to.have.length(2);
    // A refresh brings a second server: the store follows, the old one is replaced.
    configs = [{ dnsServerIps: ["169.254.0.53", "fd00::53"], searchDomains: ["alpha"] }];
    const again = await h.request(ctx(), create(NetworkServiceRequestSchema, { connection: c1 }));
    expect(again.context?.dnsContext?.configs.map((c) => c.dnsServerIps)).to.deep.equal([["169.254.0.53", "fd00::53"]]);
    expect(store.get("c1")).to.deep.equal([{ dnsServerIps: ["169.254.0.53", "fd00::53"], searchDomains: ["alpha"] }]);
    expect(store.configs()).to.have.length(2);
    // An unchanged refresh is no event.
    const n = events.length;
    await h.request(ctx(), create(NetworkServiceRequestSchema, { connection: again }));
    expect(events.length).to.equal(n);
    await h.close(ctx(), again);
    await h.close(ctx(), c2);
    expect(store.configs()).to.deep.equal([]);
    expect(events.at(-1)).to.deep.equal([]);
  });

  it("client: a failed refresh keeps the connection's configs; Close forgets them even when the next hop fails", async () => {
    const store = new DnsConfigStore();
    const h = handler(
      chain(
        newClient(store),
        metadata.newServer(),
        newServer([{ dnsServerIps: ["169.254.0.53"], searchDomains: [] }]),
        newErrorElement({ requestFailOn: [1], closeFailOn: [0] }),
      ),
    );
    const c1 = await h.request(ctx(), request({ id: "c1" }));
    let failed = false;
    await h.request(ctx(), create(NetworkServiceRequestSchema, { connection: c1 })).catch(() => (failed = true));
    expect(failed).to.equal(true);
    expect(store.configs()).to.have.length(1);
    await h.close(ctx(), c1).catch(() => {});
    expect(store.configs()).to.deep.equal([]);
  });

  it("server: a config known only later is added on the next Request, and one it stops returning is taken out", async () => {
    let configs: StoredDnsConfig[] = [];
    const h = handler(
      chain(
        metadata.newServer(),
        newServer(() => configs),
      ),
    );
    const first = await h.request(ctx(), request({ id: "c1" }));
    expect(first.context?.dnsContext?.configs).to.deep.equal([]);
    configs = [{ dnsServerIps: ["169.254.0.53"], searchDomains: ["alpha"] }];
    const second = await h.request(ctx(), create(NetworkServiceRequestSchema, { connection: first }));
    expect(second.context?.dnsContext?.configs.map((c) => c.dnsServerIps)).to.deep.equal([["169.254.0.53"]]);
    configs = [{ dnsServerIps: ["169.254.0.54"], searchDomains: ["alpha"] }];
    const third = await h.request(ctx(), create(NetworkServiceRequestSchema, { connection: second }));
    expect(third.context?.dnsContext?.configs.map((c) => c.dnsServerIps)).to.deep.equal([["169.254.0.54"]]);
  });
});

describe("dnscontext/vl3dns", () => {
  it("server: names each client by template, binds its address, gives it the DNS config once the address is known, and Close removes the name", async () => {
    const records = new MemoryRecords();
    let dnsAt: string | undefined;
    const h = handler(
      chain(
        metadata.newServer(),
        vl3dns.newServer(records, {
          dnsServerAddress: () => dnsAt,
          nameTemplates: ["{{name}}.{{networkService}}.", "{{labels.podName}}.pods.{{networkService}}"],
        }),
        ipam("169.254.30.1"),
      ),
    );
    const c1 = await h.request(ctx(), request({ id: "c1", labels: { podName: "Pod-1" } }));
    expect(c1.context?.dnsContext?.configs, "no server address yet: no config, no failure").to.deep.equal([]);
    expect(records.get("nsc-1.my-vl3")).to.deep.equal(["169.254.30.1"]);
    expect(records.get("pod-1.pods.my-vl3")).to.deep.equal(["169.254.30.1"]);
    dnsAt = "169.254.30.53";
    const refreshed = await h.request(ctx(), create(NetworkServiceRequestSchema, { connection: c1 }));
    expect(refreshed.context?.dnsContext?.configs.map((c) => [c.dnsServerIps, c.searchDomains])).to.deep.equal([
      [["169.254.30.53"], ["my-vl3", "pods.my-vl3"]],
    ]);
    await h.close(ctx(), refreshed);
    expect(records.names()).to.deep.equal([]);
  });

  it("name templates: upstream's Go-template spellings give the same names", () => {
    const conn = request({ id: "c1", labels: { podName: "Pod-7" } }).connection as Connection;
    const upstream = vl3dns.compileNameTemplate('{{ index .Labels "podName" }}.{{ .NetworkService }}.');
    expect(upstream(conn)).to.equal("pod-7.my-vl3.");
    expect(vl3dns.compileNameTemplate("{{ .Labels.podName }}.{{ target .NetworkService }}")(conn)).to.equal("pod-7.my-vl3.");
    expect(vl3dns.compileNameTemplate(vl3dns.DEFAULT_NAME_TEMPLATE)(conn)).to.equal("nsc-1.my-vl3.");
  });

  it("server: a missing label or an unknown placeholder is refused, naming it", async () => {
    expect(() => vl3dns.newServer(new MemoryRecords(), { dnsServerAddress: () => undefined, nameTemplates: ["{{pod}}.x"] })).to.throw(
      /unknown placeholder \{\{pod\}\}/,
    );
    const h = handler(
      chain(
        metadata.newServer(),
        vl3dns.newServer(new MemoryRecords(), { dnsServerAddress: () => undefined, nameTemplates: ["{{labels.podName}}.x"] }),
      ),
    );
    const err = await h.request(ctx(), request({ id: "c1" })).catch((e: unknown) => e);
    expect(err).to.be.instanceOf(StatusError);
    expect((err as StatusError).code).to.equal(Code.InvalidArgument);
    expect((err as StatusError).message).to.match(/connection\.labels\.podName/);
  });

  it("server and client: peers exchange their member-name servers; each keeps only the other's", async () => {
    const peersA = new DnsConfigStore();
    const peersB = new DnsConfigStore();
    // Endpoint B's server side; endpoint A joins it as a client.
    const b = chain(
      metadata.newServer(),
      vl3dns.newServer(new MemoryRecords(), {
        dnsServerAddress: () => "169.254.31.53",
        peers: peersB,
        isPeer: (ip) => ip.startsWith("169.254."),
      }),
      ipam("169.254.31.7"),
    );
    const h = handler(chain(vl3dns.newClient(peersA, { dnsServerAddress: () => "169.254.32.53" }), b));
    const conn = await h.request(ctx(), request({ id: "a-to-b" }));
    expect(peersA.configs().map((c) => c.dnsServerIps)).to.deep.equal([["169.254.31.53"]]);
    expect(peersB.configs().map((c) => c.dnsServerIps)).to.deep.equal([["169.254.32.53"]]);
    await h.close(ctx(), conn);
    expect([peersA.configs(), peersB.configs()]).to.deep.equal([[], []]);
  });

  it("member names from vL3 member reports: clients named by template, refresh renames, leave removes; peers become servers", async () => {
    const records = new MemoryRecords();
    const names = vl3dns.newMemberNames(records, { nameTemplates: ["{{name}}.{{networkService}}.", "{{labels.podName}}.pods"] });
    const member = {
      connId: "c1",
      name: "nsc-1",
      networkService: "my-vl3",
      labels: { podName: "pod-1" },
      addresses: ["169.254.60.2"],
      peer: false,
    };
    await names.join(member);
    await names.join({ connId: "p1", name: "nse-b", networkService: "my-vl3", labels: {}, addresses: ["169.254.61.0"], peer: true });
    expect(records.names().sort()).to.deep.equal(["nsc-1.my-vl3", "pod-1.pods"]);
    expect(names.peers()).to.deep.equal([{ host: "169.254.61.0", port: 53 }]);
    await names.join({ ...member, labels: { podName: "pod-2" }, addresses: ["169.254.60.3"] });
    expect(records.names().sort()).to.deep.equal(["nsc-1.my-vl3", "pod-2.pods"]);
    expect(records.get("nsc-1.my-vl3")).to.deep.equal(["169.254.60.3"]);
    await names.leave(member);
    await names.leave({ connId: "p1", name: "nse-b", networkService: "my-vl3", labels: {}, addresses: [], peer: true });
    expect([records.names(), names.peers()]).to.deep.equal([[], []]);
  });
});
