import { create } from "@bufbuild/protobuf";
import { ConnectionSchema, State } from "@nsm-ts/api/networkservice";
import { NetworkServiceEndpointSchema, NetworkServiceSchema } from "@nsm-ts/api/registry";
import { expect } from "chai";
import { age, clientConnectionRows, connectionRow, formatTable, nseRow, nsRow, parseCliArgs, RowPrinter } from "./cli.js";

describe("cmd-nsc CLI", () => {
  it("parses list/watch with resources, aliases, flags and -o", () => {
    expect(parseCliArgs(["list", "nse"])).to.deep.equal({ verb: "list", resource: "nse", output: "table" });
    expect(parseCliArgs(["list", "NetworkServices", "-o", "json", "--registry", "tcp://127.0.0.1:5002"])).to.deep.equal({
      verb: "list",
      resource: "ns",
      output: "json",
      registry: "tcp://127.0.0.1:5002",
    });
    expect(parseCliArgs(["watch", "connections", "--nsmgr=unix:///run/nsm.sock"])).to.deep.equal({
      verb: "watch",
      resource: "connections",
      output: "table",
      nsmgr: "unix:///run/nsm.sock",
    });
    expect(parseCliArgs(["list", "conn", "--state-dir", "/run/nsc", "-o", "json"])).to.deep.equal({
      verb: "list",
      resource: "connections",
      output: "json",
      stateDir: "/run/nsc",
    });
  });

  it("rejects bad command lines with the reason", () => {
    const cases: [string[], RegExp][] = [
      [["get", "nse"], /unknown command "get"/],
      [["list"], /list: expected ns, nse, connections or services, got ""/],
      [["watch", "pods"], /watch: expected ns, nse, connections or services, got "pods"/],
      [["list", "connections", "--nsmgr", "tcp://a:1"], /list connections reads --state-dir/],
      [["watch", "connections", "--state-dir", "/tmp"], /--state-dir applies to list connections only/],
      [["list", "nse", "--state-dir", "/tmp"], /--state-dir applies to list connections only/],
      [["list", "nse", "-o", "yaml"], /-o: expected table or json/],
      [["list", "nse", "--registry"], /--registry needs a value/],
      [["list", "nse", "--registry", "localhost:5002"], /--registry: invalid URL/],
      [["list", "nse", "--nsmgr", "tcp://a:1"], /--nsmgr applies to connections only/],
      [["watch", "connections", "--registry", "tcp://a:1"], /--registry does not apply to connections/],
      [["list", "nse", "extra"], /unknown argument "extra"/],
    ];
    for (const [argv, why] of cases) expect(() => parseCliArgs(argv), argv.join(" ")).to.throw(why);
  });

  it("formats tables like kubectl: padded columns, three spaces apart, <none> for empty cells", () => {
    const ns = create(NetworkServiceSchema, { name: "icmp-responder", payload: "ETHERNET" });
    const nse = create(NetworkServiceEndpointSchema, {
      name: "nse-1",
      url: "tcp://127.0.0.1:5001",
      networkServiceNames: ["icmp-responder"],
      networkServiceLabels: { "icmp-responder": { labels: { app: "web" } } },
      expirationTime: { seconds: BigInt(100), nanos: 0 },
    });
    expect(nsRow(ns)).to.deep.equal(["icmp-responder", "ETHERNET", "0"]);
    expect(nseRow(nse, 40_000)).to.deep.equal(["nse-1", "tcp://127.0.0.1:5001", "icmp-responder", "app=web", "1m"]);
    expect(nseRow(create(NetworkServiceEndpointSchema, { name: "x" }), 0)).to.deep.equal(["x", "", "<none>", "<none>", "<never>"]);
    expect(
      formatTable(
        ["NAME", "URL"],
        [
          ["a", "u1"],
          ["long-name", "u2"],
        ],
      ),
    ).to.equal("NAME        URL\na           u1\nlong-name   u2\n");
    expect([age(0), age(59_400), age(61_000), age(3_700_000)]).to.deep.equal(["expired", "59s", "1m1s", "1h1m"]);
  });

  it("shows a connection event row with state, addresses and path names", () => {
    const conn = create(ConnectionSchema, {
      id: "c1",
      networkService: "svc",
      state: State.UP,
      mechanism: { type: "NOOP" },
      context: { ipContext: { srcIpAddrs: ["169.254.0.1/32"], dstIpAddrs: ["169.254.0.0/32"] } },
      path: { pathSegments: [{ name: "nsc" }, { name: "nsmgr" }, { name: "nse" }] },
    });
    expect(connectionRow("UPDATE", conn)).to.deep.equal([
      "UPDATE",
      "c1",
      "svc",
      "UP",
      "NOOP",
      "169.254.0.1/32",
      "169.254.0.0/32",
      "nsc > nsmgr > nse",
    ]);
  });

  it("prints watch rows under one header, widening columns as longer values arrive", () => {
    let text = "";
    const p = new RowPrinter(["EVENT", "NAME", "URL"], { write: (s: string) => (text += s) });
    p.row(["ADDED", "a", "u"]);
    p.row(["DELETED", "bb", "u"]);
    expect(text).to.equal("EVENT   NAME   URL\nADDED   a      u\nDELETED   bb     u\n");
  });

  it("lists client connections with their state: CONNECTED, or HEALING with the attempt count", () => {
    const connection = {
      id: "c1",
      networkService: "svc",
      networkServiceEndpointName: "nse-1",
      state: "UP",
      mechanism: "KERNEL",
      mechanismParameters: {},
      srcIpAddrs: ["169.254.0.1/32"],
      dstIpAddrs: ["169.254.0.0/32"],
      labels: {},
      path: [],
    };
    const rows = clientConnectionRows([
      {
        name: "nsc-1",
        pid: 1,
        updatedAt: "",
        connections: [
          { connection, heal: { connId: "c1", state: "CONNECTED", attempt: 0 } },
          { connection: { ...connection, id: "c2" }, heal: { connId: "c2", state: "HEALING", attempt: 4, reselect: true } },
          { connection: { ...connection, id: "c3" }, heal: { connId: "c3", state: "HEALING", attempt: 2, reselect: false } },
        ],
      },
    ]);
    expect(rows.map((r) => r[4])).to.deep.equal(["CONNECTED", "HEALING (attempt 4, reselect)", "HEALING (attempt 2)"]);
    expect(rows[0]).to.deep.equal(["nsc-1", "c1", "svc", "nse-1", "CONNECTED", "169.254.0.1/32", "169.254.0.0/32"]);
  });
});
