import { expect } from "chai";
import {
  atLeastOne,
  bool,
  cidr,
  cidrList,
  duration,
  hostPort,
  int,
  ip,
  labels,
  list,
  logLevel,
  networkServiceUrls,
  nonEmpty,
  oneOf,
  parseNetworkServiceUrl,
  str,
  url,
  urlList,
} from "./index.js";

describe("tools/config parsers", () => {
  it("str trims, nonEmpty rejects blanks", () => {
    expect(str("  a b ")).to.equal("a b");
    expect(str("")).to.equal("");
    expect(nonEmpty(" x ")).to.equal("x");
    expect(() => nonEmpty("   ")).to.throw("must not be empty");
  });

  it("int parses decimals and enforces bounds", () => {
    const port = int({ min: 1, max: 65535 });
    expect(port("5002")).to.equal(5002);
    expect(port(" +7 ")).to.equal(7);
    expect(int()("-3")).to.equal(-3);
    expect(() => port("0")).to.throw("less than the minimum 1");
    expect(() => port("70000")).to.throw("greater than the maximum 65535");
    expect(() => port("12a")).to.throw('invalid integer "12a"');
    expect(() => port("1.5")).to.throw("invalid integer");
    expect(() => port("")).to.throw("invalid integer");
    expect(() => int()("99999999999999999999")).to.throw("out of range");
  });

  it("bool accepts true/false/1/0 in any case and nothing else", () => {
    expect(bool("true")).to.equal(true);
    expect(bool("TRUE")).to.equal(true);
    expect(bool("1")).to.equal(true);
    expect(bool("False")).to.equal(false);
    expect(bool("0")).to.equal(false);
    expect(() => bool("yes")).to.throw('invalid boolean "yes": expected true, false, 1 or 0');
  });

  it("duration reads Go durations into milliseconds", () => {
    expect(duration("10m")).to.equal(600_000);
    expect(duration("1m30s")).to.equal(90_000);
    expect(duration("500ms")).to.equal(500);
    expect(duration("15s")).to.equal(15_000);
    expect(duration("1h")).to.equal(3_600_000);
    expect(duration("1.5h")).to.equal(5_400_000);
    expect(duration("0")).to.equal(0);
    expect(duration("2s500ms")).to.equal(2500);
    expect(duration("1500us")).to.equal(1.5);
    expect(duration("2000000ns")).to.equal(2);
    for (const bad of ["", "10", "10x", "m", "-1s", "1m 30s", "1.2.3s", "s10"]) {
      expect(() => duration(bad), bad).to.throw(`invalid duration ${JSON.stringify(bad)}`);
    }
  });

  it("url accepts tcp://host:port and unix:///path only", () => {
    for (const ok of [
      "tcp://:5002",
      "tcp://127.0.0.1:5002",
      "tcp://localhost:0",
      "tcp://registry.nsm-system.svc:5002",
      "tcp://[::1]:5001",
      "tcp://[fd00::1]:65535",
      "unix:///var/lib/networkservicemesh/nsm.io.sock",
      "unix:///tmp/a b/c.sock",
    ]) {
      expect(url(ok), ok).to.equal(ok);
    }
    expect(url(" tcp://:5002 ")).to.equal("tcp://:5002");
    for (const bad of [
      "x",
      "tcp://host",
      "tcp://host:",
      "tcp://host:65536",
      "tcp://::1:5001",
      "tcp://[not-v6]:1",
      "tcp://a_b:1",
      "tcp://host:1/path",
      "unix://relative.sock",
      "unix:///",
      "unix:///dir/",
      "http://host:80",
      "",
    ]) {
      expect(() => url(bad), bad).to.throw(`invalid URL ${JSON.stringify(bad)}: expected tcp://host:port or unix:///path`);
    }
  });

  it("urlList and list split on commas and drop empty entries", () => {
    expect(list("a, b,,c ,")).to.deep.equal(["a", "b", "c"]);
    expect(list("")).to.deep.equal([]);
    expect(urlList("unix:///a.sock, tcp://:5001")).to.deep.equal(["unix:///a.sock", "tcp://:5001"]);
    expect(() => urlList("unix:///a.sock,bogus")).to.throw('invalid URL "bogus"');
    expect(atLeastOne(list)("a")).to.deep.equal(["a"]);
    expect(() => atLeastOne(list)(" , ")).to.throw('must list at least one value, got " , "');
  });

  it("hostPort needs a host", () => {
    expect(hostPort("otel:4317")).to.equal("otel:4317");
    expect(hostPort("[::1]:4317")).to.equal("[::1]:4317");
    expect(() => hostPort(":4317")).to.throw("expected host:port");
    expect(() => hostPort("otel")).to.throw("expected host:port");
  });

  it("labels reads upstream's key:value,key:value", () => {
    expect(labels("p2p:true")).to.deep.equal({ p2p: "true" });
    expect(labels("app:web, url:tcp://x:1 ,empty:")).to.deep.equal({ app: "web", url: "tcp://x:1", empty: "" });
    expect(labels("")).to.deep.equal({});
    expect(labels("app=web,u=a:b")).to.deep.equal({ app: "web", u: "a:b" });
    expect(() => labels("novalue")).to.throw('invalid label "novalue": expected key:value');
    expect(() => labels(":v")).to.throw("empty key");
    expect(() => labels("a:1,a:2")).to.throw('duplicate label key "a"');
  });

  it("cidr validates IPv4 and IPv6 prefixes", () => {
    expect(cidr("169.254.0.0/16")).to.equal("169.254.0.0/16");
    expect(cidr("fd00::/8")).to.equal("fd00::/8");
    expect(cidr("0.0.0.0/0")).to.equal("0.0.0.0/0");
    expect(cidr("fd00::1/128")).to.equal("fd00::1/128");
    for (const bad of ["169.254.0.0", "169.254.0.0/33", "fd00::/129", "300.1.1.1/8", "x/8", "10.0.0.0/-1", "/8", ""]) {
      expect(() => cidr(bad), bad).to.throw(`invalid CIDR ${JSON.stringify(bad)}`);
    }
    expect(cidrList("169.254.0.0/16, fd00::/64")).to.deep.equal(["169.254.0.0/16", "fd00::/64"]);
    expect(() => cidrList("169.254.0.0/16,bad")).to.throw('invalid CIDR "bad"');
  });

  it("ip accepts one IPv4 or IPv6 address", () => {
    expect(ip("198.51.100.7")).to.equal("198.51.100.7");
    expect(ip(" fd00::1 ")).to.equal("fd00::1");
    expect(() => ip("198.51.100.0/24")).to.throw('invalid IP address "198.51.100.0/24"');
    expect(() => ip("host")).to.throw("invalid IP address");
  });

  it("logLevel maps upstream names case-insensitively to pino levels", () => {
    expect(logLevel("INFO")).to.equal("info");
    expect(logLevel("Trace")).to.equal("trace");
    expect(logLevel("warn")).to.equal("warn");
    expect(logLevel("PANIC")).to.equal("fatal");
    expect(() => logLevel("loud")).to.throw('invalid log level "loud"');
  });

  it("oneOf matches case-insensitively and returns the listed spelling", () => {
    const mech = oneOf(["NOOP", "KERNEL"]);
    expect(mech("kernel")).to.equal("KERNEL");
    expect(mech("NOOP")).to.equal("NOOP");
    expect(() => mech("vpp")).to.throw('invalid value "vpp": expected one of NOOP, KERNEL');
  });

  it("parseNetworkServiceUrl reads [mechanism://]service[@domain][/ifname][?labels]", () => {
    expect(parseNetworkServiceUrl("kernel://icmp-responder/nsm-1?app=web&color=red")).to.deep.equal({
      mechanism: "KERNEL",
      networkService: "icmp-responder",
      ifName: "nsm-1",
      labels: { app: "web", color: "red" },
    });
    expect(parseNetworkServiceUrl("my-service")).to.deep.equal({
      mechanism: "KERNEL",
      networkService: "my-service",
      labels: {},
    });
    expect(parseNetworkServiceUrl("memif://svc@cluster2.example/if0")).to.deep.equal({
      mechanism: "MEMIF",
      networkService: "svc@cluster2.example",
      ifName: "if0",
      labels: {},
    });
    expect(parseNetworkServiceUrl("Noop://svc?a=%20x&flag")).to.deep.equal({
      mechanism: "NOOP",
      networkService: "svc",
      labels: { a: " x", flag: "" },
    });
    expect(parseNetworkServiceUrl("svc/exactly15chars")).to.have.property("ifName", "exactly15chars");
  });

  it("parseNetworkServiceUrl rejects bad entries with the reason", () => {
    const cases: [string, string][] = [
      ["kernel://svc/sixteen-chars-xx", "longer than 15 characters"],
      ["foo://svc", 'unknown mechanism "foo"'],
      ["kernel:///if", "missing or invalid service name"],
      ["kernel://", "missing or invalid service name"],
      ["svc@a@b", "invalid domain"],
      ["svc@", "invalid domain"],
      ["svc/", "invalid interface name"],
      ["svc/a/b", "invalid interface name"],
      ["svc?=v", "empty label key"],
      ["svc?a=%zz", "bad %-escape"],
    ];
    for (const [raw, why] of cases) {
      expect(() => parseNetworkServiceUrl(raw), raw).to.throw(why);
      expect(() => parseNetworkServiceUrl(raw), raw).to.throw(`invalid network service URL ${JSON.stringify(raw)}`);
    }
  });

  it("networkServiceUrls splits a comma-separated list", () => {
    const got = networkServiceUrls("kernel://a/nsm-1, kernel://b/nsm-2?x=1");
    expect(got.map((u) => [u.networkService, u.ifName, u.labels])).to.deep.equal([
      ["a", "nsm-1", {}],
      ["b", "nsm-2", { x: "1" }],
    ]);
    expect(networkServiceUrls("")).to.deep.equal([]);
  });
});
